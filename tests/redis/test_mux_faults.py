"""MuxClient against private redis-servers: outages, freezes, auth, ACL, OOM, TLS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.support.redis_server import RedisServer, free_port
from tests.support.tls import HAVE_OPENSSL, make_cert

from redkeep.errors import (
    BackendAuthError,
    BackendResponseError,
    BackendTimeout,
    BackendUnavailable,
    is_transient,
)
from redkeep.redis.mux import MuxClient

Factory = Callable[..., RedisServer]


async def test_refused_connection_is_transient_unavailable() -> None:
    client = MuxClient(f"redis://127.0.0.1:{free_port()}/0", retry_attempts=1)
    try:
        with pytest.raises(BackendUnavailable) as info:
            await client.get("k")
        assert is_transient(info.value)
    finally:
        await client.close()


async def test_killed_server_unavailable_then_reconnects_after_restart(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory()
    client = MuxClient(server.url, retry_attempts=2, retry_base_delay=0.01, command_timeout=1)
    try:
        await client.set("k", "v")
        server.kill()
        with pytest.raises(BackendUnavailable) as info:
            await client.get("k")
        assert is_transient(info.value)
        server.start()
        assert await client.set("k", "again") is True  # same client, new connections
        assert await client.get("k") == "again"
    finally:
        await client.close()


async def test_retry_rides_out_a_short_restart(redis_server_factory: Factory) -> None:
    server = redis_server_factory()
    client = MuxClient(server.url, retry_attempts=8, retry_base_delay=0.05, retry_max_delay=0.5)
    try:
        await client.ping()
        server.kill()
        loop = asyncio.get_running_loop()
        restart = loop.run_in_executor(None, lambda: (time.sleep(0.2), server.start()))
        assert await client.set("k", "v") is True  # retried until the server was back
        await restart
    finally:
        await client.close()


async def test_paused_server_times_out_within_command_timeout(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory()
    client = MuxClient(server.url, command_timeout=1.0, retry_attempts=3)
    try:
        await client.ping()
        server.pause()
        start = time.monotonic()
        with pytest.raises(BackendTimeout) as info:
            await client.get("k")
        elapsed = time.monotonic() - start
        assert 0.9 < elapsed < 1.9  # timeouts are not retried (a retry would take 2 s or more)
        assert is_transient(info.value)
    finally:
        server.resume()
        await client.close()


async def test_wrong_password_is_auth_error_without_the_password(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory(requirepass="right-horse-battery")
    bad = MuxClient(f"redis://:wrong-staple-9321@127.0.0.1:{server.port}/0", retry_attempts=0)
    none = MuxClient(server.url_no_auth, retry_attempts=0)
    good = MuxClient(server.url)
    try:
        with pytest.raises(BackendAuthError) as info:
            await bad.get("k")
        assert "wrong-staple-9321" not in str(info.value)
        assert "right-horse-battery" not in str(info.value)
        assert not is_transient(info.value)
        with pytest.raises(BackendAuthError):
            await none.get("k")
        assert await good.set("k", "v") is True
    finally:
        for c in (bad, none, good):
            await c.close()


async def test_acl_user_works_and_restricted_user_gets_auth_error(
    redis_server_factory: Factory, prefix: str
) -> None:
    server = redis_server_factory(acl_user=("app", "app-secret-77"))
    server.cli("ACL", "SETUSER", "reader", "on", ">reader-secret-88", "~*", "+get", "+ping")
    app = MuxClient(server.url)
    reader = MuxClient(f"redis://reader:reader-secret-88@127.0.0.1:{server.port}/0")
    wrong = MuxClient(f"redis://app:nope-nope-11@127.0.0.1:{server.port}/0", retry_attempts=0)
    try:
        assert await app.execute("ACL", "WHOAMI") == "app"
        await app.set(f"{prefix}:k", "v")
        assert await reader.get(f"{prefix}:k") == "v"
        with pytest.raises(BackendAuthError, match="NOPERM") as info:
            await reader.set(f"{prefix}:k", "w")
        assert "reader-secret-88" not in str(info.value)
        with pytest.raises(BackendAuthError) as wrong_info:
            await wrong.ping()
        assert "nope-nope-11" not in str(wrong_info.value)
    finally:
        for c in (app, reader, wrong):
            await c.close()


async def test_out_of_memory_is_response_error_with_server_message(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory(maxmemory="1mb", maxmemory_policy="noeviction")
    client = MuxClient(server.url)
    try:
        with pytest.raises(BackendResponseError, match=r"^OOM "):
            for i in range(200):  # bounded: 200 x 64 KiB is far above 1 MiB
                await client.set(f"fill:{i}", "x" * 65536)
    finally:
        await client.close()


async def test_invalid_utf8_is_replaced_not_raised(redis_server_factory: Factory) -> None:
    server = redis_server_factory()
    server.cli("SET", "raw", "ok")
    client = MuxClient(server.url)
    try:
        # DEBUG-free way to store invalid UTF-8: SETRANGE with a Lua-built byte.
        await client.execute("EVAL", "return redis.call('SET', KEYS[1], '\\255\\254ab')", 1, "raw")
        assert await client.get("raw") == "\ufffd\ufffdab"
    finally:
        await client.close()


async def test_blocking_pop_wait_is_capped_below_command_timeout(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory()
    client = MuxClient(server.url, command_timeout=0.5)
    try:
        await client.ping()  # connect first: only the wait is measured
        start = time.monotonic()
        assert await client.bzpopmin(["empty"], 10) is None  # would trip the socket timeout
        assert 0.3 < time.monotonic() - start < 5  # capped at 0.4 s, not the 10 s asked for
    finally:
        await client.close()


@pytest.mark.skipif(not HAVE_OPENSSL, reason="openssl CLI not installed")
async def test_tls_connection_with_self_signed_cert(
    redis_server_factory: Factory, tmp_path: Path, prefix: str
) -> None:
    cert, key, ca = make_cert(tmp_path)
    server = redis_server_factory(tls=(cert, key, ca))
    client = MuxClient(f"{server.tls_url}?ssl_ca_certs={ca}")
    untrusted = MuxClient(server.tls_url, retry_attempts=0)
    try:
        assert await client.set(f"{prefix}:tls", "secure") is True
        assert await client.get(f"{prefix}:tls") == "secure"
        with pytest.raises(BackendUnavailable):  # certificate not trusted by default
            await untrusted.ping()
    finally:
        await client.close()
        await untrusted.close()


async def test_large_write_to_frozen_server_times_out(redis_server_factory: Factory) -> None:
    # 32 MiB cannot fit in the loopback socket buffers: the send itself must block and time out.
    server = redis_server_factory()
    client = MuxClient(server.url, command_timeout=0.5, retry_attempts=0)
    try:
        await client.ping()
        server.pause()
        start = time.monotonic()
        with pytest.raises(BackendTimeout):
            await client.set("big", "x" * (32 * 1024 * 1024))
        assert time.monotonic() - start < 0.5 + 5.0  # bounded, where an unbounded send hangs
        server.resume()
        assert await client.set("small", "v") is True  # the pool recovered a fresh connection
    finally:
        server.resume()
        await client.close()
