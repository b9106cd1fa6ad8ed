"""UpstashRestClient failure handling against the npm emulator and absent servers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tests.support.redis_server import free_port
from tests.support.upstash import emulator_missing_reason, start_emulator

from redkeep.config import Settings
from redkeep.errors import BackendAuthError, BackendTimeout, BackendUnavailable, is_transient
from redkeep.redis.commands import parse_info
from redkeep.redis.upstash import UpstashRestClient

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
    """The REST reply is INFO's text: parsed like the RESP transports' (``k=v,...`` as dicts)."""
    text = (
        "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:12\r\nratio:1.5\r\n\r\n"
        "# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n"
    )
    assert parse_info(text) == {
        "redis_version": "7.0.15",
        "uptime_in_seconds": 12,
        "ratio": 1.5,
        "db0": {"keys": 3, "expires": 0, "avg_ttl": 0},
    }


class _ScriptedHandler(BaseHTTPRequestHandler):
    """Answers from ``server.script`` (a list of (status, delay)), then 200 PONG."""

    def do_POST(self) -> None:
        server: Any = self.server
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        server.requests += 1
        status, delay = server.script.pop(0) if server.script else (200, 0.0)
        time.sleep(delay)
        body = b'{"result":"PONG"}' if status == 200 else b"unavailable"
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (timeout test)
            pass

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def scripted_server() -> Iterator[Any]:
    """A fake HTTP server: real Upstash cannot be made to answer 503 or stall on demand."""
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _ScriptedHandler)
    server.requests = 0
    server.script = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_503_and_429_are_retried_with_backoff_then_succeed(scripted_server: Any) -> None:
    scripted_server.script = [(503, 0.0), (429, 0.0)]
    url = f"http://127.0.0.1:{scripted_server.server_address[1]}"
    client = UpstashRestClient(url, "tok-fake", retry_attempts=3, retry_base_delay=0.01)
    try:
        assert await client.ping() > 0
        assert scripted_server.requests == 3
    finally:
        await client.close()


async def test_503_beyond_retry_budget_is_unavailable(scripted_server: Any) -> None:
    scripted_server.script = [(503, 0.0)] * 5
    url = f"http://127.0.0.1:{scripted_server.server_address[1]}"
    client = UpstashRestClient(url, "tok-fake", retry_attempts=2, retry_base_delay=0.01)
    try:
        with pytest.raises(BackendUnavailable, match="503"):
            await client.ping()
        assert scripted_server.requests == 3
    finally:
        await client.close()


async def test_read_timeout_is_not_retried(scripted_server: Any) -> None:
    # The command may have run server-side: repeating it could apply it twice (INCR, enqueue).
    scripted_server.script = [(200, 1.0)]
    url = f"http://127.0.0.1:{scripted_server.server_address[1]}"
    client = UpstashRestClient(url, "tok-fake", command_timeout=0.3, retry_attempts=3)
    try:
        with pytest.raises(BackendTimeout):
            await client.incrby("k")
        assert scripted_server.requests == 1
    finally:
        await client.close()
