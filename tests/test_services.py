"""Startup wiring: strict versus degraded startup, backend validation, component access."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from redkeep.cache.fallback import FallbackCache
from redkeep.cache.memory import MemoryCache
from redkeep.config import Settings
from redkeep.errors import BackendError, RedkeepError
from redkeep.monitoring.probes import QUEUE_DEPTH
from redkeep.queue.memory import MemoryJobQueue
from redkeep.queue.redis import RedisJobQueue
from redkeep.services import MEMORY_WARNING, Services, StartupError, create_services
from tests.support.redis_server import free_port

PASSWORD = "hunter2-very-secret"


def absent_url() -> str:
    """A Redis URL (with a password) on a loopback port where nothing listens."""
    return f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"


def settings(**values: Any) -> Settings:
    base: dict[str, Any] = {
        "connect_timeout": 0.5,
        "command_timeout": 0.5,
        "connect_max_wait": 0.5,
        "retry_attempts": 0,
        "health_check_interval": 0.2,
    }
    base.update(values)
    return Settings(**base)


async def test_memory_backend_warns_once_and_builds_memory_components(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="redkeep")
    async with create_services(settings(backend="memory")) as services:
        assert services.backend == "memory"
        assert isinstance(services.cache("sessions"), MemoryCache)
        assert services.cache("sessions") is services.cache("sessions")
        assert isinstance(services.queue(), MemoryJobQueue)
        assert services.queue() is services.queue("default")
        job = await services.queue().enqueue("echo", {"a": 1})
        assert (await services.queue().get_job(job.id)) is not None
        report = await services.health()
        assert report["ready"] is True
        assert report["components"]["backend"]["durable"] is False
    warnings = [r for r in caplog.records if r.getMessage() == MEMORY_WARNING]
    assert len(warnings) == 1


async def test_closed_services_refuse_new_components() -> None:
    services = create_services(settings(backend="memory"))
    with pytest.raises(RedkeepError, match="not started"):
        services.queue("q")
    await services.start()
    await services.close()
    await services.close()  # idempotent
    with pytest.raises(RedkeepError, match="not started"):
        services.queue("other")


async def test_strict_startup_gives_up_after_connect_max_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="redkeep")
    s = settings(redis_url=absent_url(), startup="strict", connect_max_wait=1.5)
    start = time.monotonic()
    with pytest.raises(StartupError) as info:
        async with create_services(s):
            pass
    assert 1.4 <= time.monotonic() - start < 10
    message = str(info.value)
    assert "strict startup" in message
    assert "unreachable" in message and "REDKEEP_CONNECT_MAX_WAIT=1.5" in message
    assert "127.0.0.1" in message
    assert PASSWORD not in message
    assert any("waiting up to 1.5 s" in r.getMessage() for r in caplog.records)
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)


async def test_strict_startup_waits_for_redis_that_comes_up_late(
    redis_server_factory: Any,
) -> None:
    """Issue 13 repro: strict startup gave up after about a second."""
    server = redis_server_factory(start=False)
    starter = threading.Timer(2.0, server.start)
    starter.start()
    try:
        start = time.monotonic()
        s = settings(redis_url=server.url, startup="strict", connect_max_wait=30.0)
        async with create_services(s) as services:
            assert time.monotonic() - start >= 1.9
            assert services.degraded_reason is None
            assert (await services.health())["ready"] is True
    finally:
        starter.join()


async def test_strict_startup_does_not_wait_out_a_wrong_password(
    redis_server_factory: Any,
) -> None:
    server = redis_server_factory(requirepass="right-password-123")
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
    start = time.monotonic()
    with pytest.raises(StartupError, match="AuthError") as info:
        async with create_services(settings(redis_url=url, startup="strict", connect_max_wait=30)):
            pass
    assert time.monotonic() - start < 10
    assert PASSWORD not in str(info.value)


async def test_degraded_startup_serves_caches_from_fallback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="redkeep")
    s = settings(redis_url=absent_url(), startup="degraded")
    async with create_services(s) as services:
        cache = services.cache("sessions")
        assert isinstance(cache, FallbackCache)
        await cache.set("k", {"v": 1})  # no exception while Redis is absent
        assert await cache.get("k") == {"v": 1}
        report = await services.health()
        assert report["ready"] is False
        assert report["status"] == "unavailable"
        assert "unreachable" in report["reason"]
        assert report["components"]["backend"]["status"] == "down"
        assert report["components"]["caches"]["caches"]["sessions"]["status"] == "fallback"
        assert PASSWORD not in repr(report)
        with pytest.raises(BackendError):  # queues need Redis: a clear transient error
            await services.queue().enqueue("echo")
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)


async def test_degraded_startup_recovers_when_redis_appears(redis_server_factory: Any) -> None:
    server = redis_server_factory(start=False)
    s = settings(redis_url=server.url, startup="degraded")
    async with create_services(s) as services:
        assert (await services.health())["ready"] is False
        server.start()
        deadline = time.monotonic() + 10
        while not (report := await services.health())["ready"]:
            assert time.monotonic() < deadline, report
        job = await services.queue().enqueue("echo", 1)
        assert (await services.queue().get_job(job.id)) is not None


async def test_redis_startup_loads_scripts_and_builds_redis_components(
    redis_url: str, prefix: str
) -> None:
    s = settings(redis_url=redis_url, key_prefix=prefix, startup="strict", command_timeout=2.0)
    async with create_services(s) as services:
        assert services.backend == "redis"
        assert isinstance(services.cache(), FallbackCache)
        assert isinstance(services.queue("jobs"), RedisJobQueue)
        assert services.client is not None
        exists = await services.client.execute("SCRIPT", "EXISTS", QUEUE_DEPTH.sha)
        assert list(exists) == [1]
        report = await services.health()
        assert report["ready"] is True
        assert report["status"] == "ready"
        assert report["components"]["backend"]["latency_ms"] >= 0
        assert report["components"]["backend"]["url"] == s.redis_url_redacted


async def test_evicting_policy_refused_when_strict(redis_server_factory: Any) -> None:
    server = redis_server_factory(maxmemory="64mb", maxmemory_policy="allkeys-lru")
    with pytest.raises(StartupError, match="maxmemory-policy 'allkeys-lru'"):
        async with create_services(settings(redis_url=server.url, startup="strict")):
            pass


async def test_evicting_policy_warns_when_degraded(redis_server_factory: Any) -> None:
    server = redis_server_factory(maxmemory="64mb", maxmemory_policy="allkeys-lru")
    async with create_services(settings(redis_url=server.url, startup="degraded")) as services:
        assert services.eviction_policy == "allkeys-lru"
        assert any("noeviction" in w for w in services.warnings)
        report = await services.health()
        assert report["ready"] is True
        assert report["warnings"] == services.warnings


async def test_services_context_manager_returns_itself() -> None:
    services = Services(settings(backend="memory"))
    async with services as entered:
        assert entered is services


async def _exercise(services: Services) -> None:
    """Cache, queue, metrics and health through one started Services."""
    cache = services.cache("c")
    await cache.set("k", [1, "two"])
    assert await cache.get("k") == [1, "two"]
    queue = services.queue("q")
    job = await queue.enqueue("echo", {"x": 1})
    assert (await queue.get_job(job.id)) is not None
    await services.refresh_metrics()
    text = services.metrics.render().decode()
    assert 'redkeep_queue_jobs{queue="q",status="waiting"} 1.0' in text
    assert 'redkeep_cache_sets_total{cache="c"} 1.0' in text
    report = await services.health()
    assert report["ready"] is True, report


@pytest.mark.cluster
async def test_services_on_redis_cluster(redis_cluster: Any, prefix: str) -> None:
    s = settings(
        redis_url=redis_cluster.url,
        redis_cluster=True,
        key_prefix=prefix,
        startup="strict",
        command_timeout=2.0,
        connect_timeout=2.0,
    )
    async with create_services(s) as services:
        assert services.client is not None and services.client.transport == "cluster"
        await _exercise(services)


@pytest.mark.upstash
async def test_services_on_upstash_rest(upstash_emulator: Any, prefix: str) -> None:
    s = settings(
        backend="upstash",
        REDKEEP_UPSTASH_URL=upstash_emulator.url,  # aliased fields take their env names
        REDKEEP_UPSTASH_TOKEN=upstash_emulator.token,
        key_prefix=prefix,
        startup="strict",
        command_timeout=2.0,
        connect_timeout=2.0,
    )
    async with create_services(s) as services:
        assert services.client is not None and services.client.transport == "upstash"
        await _exercise(services)
        report = await services.health()
        assert upstash_emulator.token not in repr(report)
