"""ConnectionManager: startup backoff, bounded wait, health pings, listeners, clean shutdown."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from tests.support.redis_server import RedisServer, free_port

from redkeep.config import Settings
from redkeep.redis.connection import ConnectionManager
from redkeep.redis.mux import MuxClient

Factory = Callable[..., RedisServer]


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "backend": "memory",
        "connect_max_wait": 10.0,
        "health_check_interval": 0.1,
        "command_timeout": 0.5,
        "connect_timeout": 0.5,
        "retry_attempts": 0,
        "retry_base_delay": 0.05,
        "retry_max_delay": 0.3,
    }
    values.update(overrides)
    return Settings(**values)


def client_for(url: str) -> MuxClient:
    return MuxClient(url, command_timeout=0.5, connect_timeout=0.5, retry_attempts=0)


async def test_server_absent_at_start_retries_until_it_starts(
    redis_server_factory: Factory,
) -> None:
    port = free_port()
    client = client_for(f"redis://127.0.0.1:{port}/0")
    manager = ConnectionManager(client, settings(health_check_interval=0))
    changes: list[tuple[str, str]] = []
    manager.add_listener(lambda old, new: changes.append((old, new)))
    try:
        starting = asyncio.create_task(manager.start())
        await asyncio.sleep(0.6)
        assert manager.state == "connecting"
        assert not starting.done()
        redis_server_factory(port=port)
        assert await asyncio.wait_for(starting, 5) == "ready"
        assert manager.attempts >= 3  # several backoff rounds before the server came up
        assert changes == [("connecting", "ready")]
        assert manager.last_latency is not None and manager.last_latency > 0
    finally:
        await manager.close()
        await client.close()


async def test_backoff_delays_grow_between_attempts() -> None:
    client = client_for(f"redis://127.0.0.1:{free_port()}/0")
    manager = ConnectionManager(
        client, settings(connect_max_wait=1.0, retry_base_delay=0.05, retry_max_delay=0.4)
    )
    try:
        await manager.start()
        # Equal-jitter backoff 0.05, 0.1, 0.2, 0.4, 0.4...: about 5-8 attempts in 1 s, not 100s.
        assert 3 <= manager.attempts <= 12
    finally:
        await manager.close()
        await client.close()


async def test_gives_up_after_connect_max_wait_and_is_degraded() -> None:
    client = client_for(f"redis://127.0.0.1:{free_port()}/0")
    manager = ConnectionManager(client, settings(connect_max_wait=0.5, health_check_interval=0))
    try:
        start = time.monotonic()
        assert await manager.start() == "degraded"
        assert time.monotonic() - start < 0.5 + 0.6
        assert manager.last_error is not None and "BackendUnavailable" in manager.last_error
    finally:
        await manager.close()
        await client.close()


async def test_auth_failure_degrades_immediately_without_waiting(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory(requirepass="pw-one-two-three")
    client = client_for(f"redis://:wrong-pw-4567@127.0.0.1:{server.port}/0")
    manager = ConnectionManager(client, settings(connect_max_wait=10, health_check_interval=0))
    try:
        start = time.monotonic()
        assert await manager.start() == "degraded"
        assert time.monotonic() - start < 2
        assert manager.last_error is not None
        assert "BackendAuthError" in manager.last_error
        assert "wrong-pw-4567" not in manager.last_error
    finally:
        await manager.close()
        await client.close()


async def test_health_pings_track_outage_and_recovery(redis_server_factory: Factory) -> None:
    server = redis_server_factory()
    client = client_for(server.url)
    manager = ConnectionManager(client, settings(health_check_interval=0.1))
    changes: list[tuple[str, str]] = []
    manager.add_listener(lambda old, new: changes.append((old, new)))
    try:
        assert await manager.start() == "ready"
        server.kill()
        for _ in range(50):  # bounded: up to 5 s
            if manager.state == "degraded":
                break
            await asyncio.sleep(0.1)
        assert manager.state == "degraded"
        server.start()
        assert await manager.wait_ready(5)
        assert changes == [("connecting", "ready"), ("ready", "degraded"), ("degraded", "ready")]
    finally:
        await manager.close()
        await client.close()


async def test_paused_server_degrades_via_timeout(redis_server_factory: Factory) -> None:
    server = redis_server_factory()
    client = client_for(server.url)
    manager = ConnectionManager(client, settings(health_check_interval=0))
    try:
        assert await manager.start() == "ready"
        server.pause()
        assert await manager.check() == "degraded"
        assert manager.last_error is not None and "BackendTimeout" in manager.last_error
        server.resume()
        assert await manager.check() == "ready"
    finally:
        server.resume()
        await manager.close()
        await client.close()


async def test_close_leaves_no_pending_task_and_stays_closed(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory()
    client = client_for(server.url)
    manager = ConnectionManager(client, settings(health_check_interval=0.05))
    changes: list[tuple[str, str]] = []
    manager.add_listener(lambda old, new: changes.append((old, new)))
    await manager.start()
    await asyncio.sleep(0.12)
    await manager.close()
    await client.close()
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not [t for t in others if "health" in t.get_name()]
    assert manager.state == "closed"
    assert await manager.check() == "closed"
    assert changes[-1] == ("ready", "closed")
    with pytest.raises(RuntimeError):
        await manager.start()


async def test_listener_errors_do_not_break_state_changes(redis_server_factory: Factory) -> None:
    server = redis_server_factory()
    client = client_for(server.url)
    manager = ConnectionManager(client, settings(health_check_interval=0))
    seen: list[str] = []

    def broken(old: str, new: str) -> None:
        raise ValueError("listener bug")

    manager.add_listener(broken)
    manager.add_listener(lambda old, new: seen.append(new))
    try:
        assert await manager.start() == "ready"
        assert seen == ["ready"]
        manager.remove_listener(broken)
    finally:
        await manager.close()
        await client.close()


async def test_shutdown_leaves_no_unclosed_connection_warnings(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = client_for(server.url)
        manager = ConnectionManager(client, settings(health_check_interval=0.05))
        await manager.start()
        await asyncio.gather(*(client.get(f"k{i}") for i in range(20)))  # several connections
        await manager.close()
        await client.close()
        del client, manager
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
