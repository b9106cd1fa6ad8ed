"""Sentinel through the reference transport: startup errors, and a failover under load.

Every process is a private child on loopback (tests/support/sentinel.py): a primary, one
replica and three sentinels that call the primary down after 1 s of silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.redis_server import free_port
from tests.support.sentinel import SENTINEL_DOWN_AFTER_MS, SentinelSet, start_sentinels

from redkeep.cache import FallbackCache, RedisCache
from redkeep.config import Settings
from redkeep.errors import BackendError, BackendResponseError, BackendUnavailable, is_transient
from redkeep.queue import RedisJobQueue, Worker
from redkeep.redis.redispy import RedisPyClient
from redkeep.services import Services, StartupError

pytestmark = pytest.mark.sentinel


@pytest.fixture
def sentinels() -> Iterator[SentinelSet]:
    """A set of its own: the failover test changes which server is primary."""
    group = start_sentinels()
    try:
        yield group
    finally:
        group.stop()


async def test_primary_is_found_through_the_sentinels(redis_sentinel: Any, prefix: str) -> None:
    client = RedisPyClient(redis_sentinel.url)
    try:
        assert client.transport == "sentinel"
        await client.set(f"{prefix}:k", "v")
        primary = redis_sentinel.server_on(redis_sentinel.primary_port())
        assert primary.cli("GET", f"{prefix}:k").strip() == "v"
    finally:
        await client.close()


async def test_unreachable_sentinels_are_named_and_transient() -> None:
    url = f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{free_port()}/svc"
    client = RedisPyClient(url, retry_attempts=1, retry_base_delay=0.01)
    try:
        with pytest.raises(BackendUnavailable, match="no sentinel of REDKEEP_REDIS_URL") as info:
            await client.ping()
        assert is_transient(info.value)
    finally:
        await client.close()
    settings = Settings(
        backend="redis", redis_url=url, startup="strict", connect_max_wait=2, retry_attempts=0
    )
    with pytest.raises(StartupError, match="no sentinel of REDKEEP_REDIS_URL"):
        await Services(settings).start()


async def test_unknown_service_is_a_startup_error_and_nothing_is_written(
    redis_sentinel: Any,
) -> None:
    url = redis_sentinel.url.replace(redis_sentinel.service, "no-such-service")
    primary = redis_sentinel.server_on(redis_sentinel.primary_port())
    before = primary.cli("DBSIZE").strip(), primary.cli("SCRIPT", "EXISTS", "x").strip()
    client = RedisPyClient(url)
    try:
        with pytest.raises(BackendResponseError, match="know no service named 'no-such-service'"):
            await client.set("k", "v")
    finally:
        await client.close()
    for startup in ("strict", "degraded"):
        settings = Settings(backend="redis", redis_url=url, startup=startup, connect_max_wait=5)
        started = time.monotonic()
        if startup == "strict":
            with pytest.raises(StartupError, match=r"REDKEEP_REDIS_URL.*no-such-service"):
                await Services(settings).start()
        else:
            async with Services(settings) as services:
                assert "no-such-service" in (services.degraded_reason or "")
        assert time.monotonic() - started < 4  # not transient: no backoff until connect_max_wait
    assert (primary.cli("DBSIZE").strip(), before[1]) == before


@pytest.mark.slow
async def test_failover_under_load_recovers_by_itself(
    sentinels: SentinelSet, record_property: Any
) -> None:
    """Kill the primary while jobs are enqueued and processed and a cache is used: the cache
    answers from memory meanwhile, and enqueues succeed again within 2 s of the sentinels
    naming the new primary."""
    client = RedisPyClient(
        sentinels.url, command_timeout=1, retry_attempts=2, retry_base_delay=0.05
    )
    worker_client = RedisPyClient(sentinels.url, command_timeout=1, retry_base_delay=0.05)
    queue = RedisJobQueue(client, f"q-{uuid.uuid4().hex[:6]}", key_prefix="rkt-failover")
    worker_queue = RedisJobQueue(worker_client, queue.name, key_prefix="rkt-failover")
    cache = FallbackCache(RedisCache(client, "c", key_prefix="rkt-failover"))
    done: set[str] = set()

    async def handler(job: Any) -> None:
        done.add(job.id)

    worker = Worker(worker_queue, {"job": handler}, concurrency=5, handle_signals=False)
    running = asyncio.create_task(worker.run())
    acknowledged: list[tuple[float, str]] = []
    cache_errors: list[BaseException] = []
    enqueue_errors = 0
    old_port = sentinels.primary_port()
    killed_at = switched_at = 0.0
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:  # when do the sentinels name another primary?
        nonlocal switched_at
        while not switched_at:
            with contextlib.suppress(RuntimeError):
                if await asyncio.to_thread(sentinels.primary_port) != old_port:
                    switched_at = time.monotonic()
            await asyncio.sleep(0.05)

    try:
        deadline = time.monotonic() + 40
        i = 0
        while time.monotonic() < deadline:
            i += 1
            try:
                job = await queue.enqueue("job", {"i": i})
                acknowledged.append((time.monotonic(), job.id))
            except BackendError:
                enqueue_errors += 1
                await asyncio.sleep(0.02)
            try:
                await cache.set(f"k{i % 50}", i)
                await cache.get(f"k{(i + 1) % 50}")
            except Exception as exc:  # the fallback cache must never raise an outage
                cache_errors.append(exc)
            if i == 200:
                sentinels.server_on(old_port).kill()
                killed_at = time.monotonic()
            if i == 200:
                watcher = asyncio.create_task(watch())
            if switched_at and acknowledged[-1][0] > switched_at + 2.5:
                break
            await asyncio.sleep(0.002)
        assert killed_at and switched_at, "the sentinels did not fail over"
        assert switched_at - killed_at >= SENTINEL_DOWN_AFTER_MS / 1000 * 0.8
        recovered = next(t for t, _ in acknowledged if t > killed_at)
        record_property("failover_s", round(switched_at - killed_at, 2))
        record_property("recovered_after_switch_s", round(recovered - switched_at, 2))
        assert recovered - switched_at <= 2.0, (recovered - switched_at, enqueue_errors)
        assert cache_errors == []
        stats = cache.stats()
        assert stats.fallback_reads > 0 and stats.fallback_writes > 0
        after = [job_id for t, job_id in acknowledged if t > recovered]
        assert after, "no enqueue after the failover"

        async def processed() -> bool:
            return set(after) <= done

        limit = time.monotonic() + 15
        while not await processed():
            assert time.monotonic() < limit, f"{len(set(after) - done)} jobs not processed"
            await asyncio.sleep(0.05)
    finally:
        if watcher is not None:
            watcher.cancel()
        worker.stop()
        await asyncio.wait_for(running, 30)
        await cache.close()
        await client.close()
        await worker_client.close()
