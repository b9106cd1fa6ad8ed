"""UpstashRestClient failure handling against the npm emulator and absent servers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.redis_server import free_port
from tests.support.upstash import emulator_missing_reason, start_emulator

from redkeep.config import Settings
from redkeep.errors import BackendAuthError, BackendTimeout, BackendUnavailable, is_transient
from redkeep.redis.upstash import UpstashRestClient, parse_info

pytestmark = pytest.mark.upstash


@pytest.fixture
def private_emulator() -> Iterator[Any]:
    """An emulator of our own, for tests that freeze its Redis."""
    reason = emulator_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    emulator = start_emulator()
    try:
        yield emulator
    finally:
        emulator.redis.resume()
        emulator.stop()


async def test_wrong_token_is_auth_error_without_the_token(upstash_emulator: Any) -> None:
    client = UpstashRestClient(upstash_emulator.url, "not-the-token-31337")
    try:
        with pytest.raises(BackendAuthError) as info:
            await client.get("k")
        assert "not-the-token-31337" not in str(info.value)
        assert upstash_emulator.token not in str(info.value)
        assert not is_transient(info.value)
    finally:
        await client.close()


async def test_absent_server_is_unavailable_after_bounded_retries() -> None:
    client = UpstashRestClient(
        f"http://127.0.0.1:{free_port()}", "tok-abcdef", retry_attempts=2, retry_base_delay=0.05
    )
    try:
        start = time.monotonic()
        with pytest.raises(BackendUnavailable) as info:
            await client.ping()
        assert is_transient(info.value)
        assert time.monotonic() - start < 2
    finally:
        await client.close()


async def test_frozen_backend_times_out_within_command_timeout(private_emulator: Any) -> None:
    client = UpstashRestClient(private_emulator.url, private_emulator.token, command_timeout=0.4)
    try:
        await client.ping()
        private_emulator.redis.pause()
        start = time.monotonic()
        with pytest.raises(BackendTimeout):
            await client.get("k")
        assert 0.35 < time.monotonic() - start < 0.4 + 0.5
    finally:
        private_emulator.redis.resume()
        await client.close()


async def test_from_settings_uses_url_token_and_timeouts(upstash_emulator: Any) -> None:
    settings = Settings(
        backend="upstash",
        REDKEEP_UPSTASH_URL=upstash_emulator.url,  # field aliases: env-style names
        REDKEEP_UPSTASH_TOKEN=upstash_emulator.token,
        command_timeout=1.5,
    )
    client = UpstashRestClient.from_settings(settings)
    try:
        assert client.command_timeout == 1.5
        assert await client.ping() > 0
        assert upstash_emulator.token not in repr(client)
    finally:
        await client.close()


def test_parse_info_converts_numbers_and_skips_sections() -> None:
    text = "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:12\r\nratio:1.5\r\n\r\n"
    assert parse_info(text) == {"redis_version": "7.0.15", "uptime_in_seconds": 12, "ratio": 1.5}
