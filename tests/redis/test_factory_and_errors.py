"""create_client wiring and the exception translation shared by both transports."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis import exceptions as rx

from redkeep.config import Settings
from redkeep.errors import (
    BackendAuthError,
    BackendResponseError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    register_secret,
)
from redkeep.redis.errors import error_category, translate_error
from redkeep.redis.factory import create_client
from redkeep.redis.mux import MuxClient
from redkeep.redis.redispy import RedisPyClient
from redkeep.redis.upstash import UpstashRestClient


async def test_memory_backend_has_no_client() -> None:
    assert create_client(Settings(backend="memory")) is None


async def test_redis_backend_builds_resp_client(redis_url: str) -> None:
    client = create_client(Settings(backend="redis", redis_url=redis_url, command_timeout=1.25))
    assert isinstance(client, MuxClient)
    try:
        assert client.transport == "mux"
        assert client.command_timeout == 1.25
        assert await client.ping() > 0
    finally:
        await client.close()


async def test_cluster_flag_builds_cluster_transport(redis_url: str) -> None:
    client = create_client(Settings(backend="redis", redis_url=redis_url, redis_cluster=True))
    assert isinstance(client, RedisPyClient)
    try:
        assert client.transport == "cluster"
        assert client.capabilities.cluster
    finally:
        await client.close()


async def test_upstash_backend_builds_rest_client() -> None:
    client = create_client(
        Settings(
            backend="upstash",
            REDKEEP_UPSTASH_URL="http://127.0.0.1:1",
            REDKEEP_UPSTASH_TOKEN="t0ken-x",
        )
    )
    assert isinstance(client, UpstashRestClient)
    await client.close()


async def test_bad_urls_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="redis://"):
        MuxClient("http://127.0.0.1:6379")
    with pytest.raises(ConfigError, match="https://"):
        UpstashRestClient("127.0.0.1:8080", "tok")
    with pytest.raises(ConfigError, match="token"):
        UpstashRestClient("http://127.0.0.1:8080", "")


@pytest.mark.parametrize(
    ("exc", "expected", "text"),
    [
        (rx.ConnectionError("Connection refused"), BackendUnavailable, "refused"),
        (rx.TimeoutError("Timeout reading from socket"), BackendTimeout, "Timeout"),
        (rx.ConnectionError("No connection available."), BackendTimeout, "pool exhausted"),
        (rx.AuthenticationError("invalid username-password pair"), BackendAuthError, "invalid"),
        (rx.NoPermissionError("this user has no permissions"), BackendAuthError, "NOPERM"),
        (rx.ResponseError("WRONGTYPE Operation against a key"), BackendResponseError, "WRONGTYPE"),
        (rx.ResponseError("unknown command 'X'"), BackendResponseError, "ERR unknown"),
        (rx.OutOfMemoryError("command not allowed when used memory"), BackendResponseError, "OOM"),
        (rx.BusyLoadingError("Redis is loading"), BackendUnavailable, "LOADING"),
        (rx.ClusterDownError("The cluster is down"), BackendResponseError, "CLUSTERDOWN"),
        (TimeoutError(), BackendTimeout, "timed out"),
        (TimeoutError(), BackendTimeout, "timed out"),
        (ConnectionResetError("reset by peer"), BackendUnavailable, "reset"),
        (httpx.ConnectError("connection refused"), BackendUnavailable, "refused"),
        (httpx.ReadTimeout("read timed out"), BackendTimeout, "timed out"),
    ],
)
def test_translation_table(exc: BaseException, expected: type, text: str) -> None:
    translated = translate_error(exc)
    assert type(translated) is expected
    assert text in str(translated)
    assert error_category(exc) == expected.__name__


def test_translation_scrubs_secrets_and_passes_other_errors_through() -> None:
    register_secret("hunter2-secret")
    err = translate_error(
        rx.ConnectionError("Error connecting to redis://user:hunter2-secret@host:6379")
    )
    assert "hunter2-secret" not in str(err)
    bug: Any = TypeError("not a backend problem")
    assert translate_error(bug) is bug
    cancelled = asyncio.CancelledError()
    assert translate_error(cancelled) is cancelled
