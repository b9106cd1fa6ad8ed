"""The blocking cache: the full CacheService API, its errors, fallback, breaker and metrics."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from redkeep.errors import InvalidKey, RedkeepError, SerializationError
from redkeep.sync import AsyncContextError, SyncServices, create_sync_services
from tests.support.redis_server import free_port
from tests.sync.conftest import make_settings


def test_full_cache_api_on_redis(services: SyncServices) -> None:
    cache = services.cache("api")
    assert services.cache("api") is cache
    assert cache.mode == "redis"
    assert cache.get("a") is None
    assert cache.get("a", "dflt") == "dflt"
    cache.set("a", {"n": 1, "when": timedelta(seconds=3)}, ttl=60)
    assert cache.get("a") == {"n": 1, "when": timedelta(seconds=3)}
    assert cache.add("a", 2) is False
    assert cache.add("b", None) is True
    assert cache.get("b", "dflt") is None  # a stored None is not a miss
    assert cache.has("b") is True and cache.has("zz") is False
    ttl = cache.ttl("a")
    assert ttl is not None and 55 < ttl <= 60
    assert cache.ttl("b") is None
    assert cache.touch("b", 30) is True and cache.touch("zz", 30) is False
    assert cache.incr("n") == 1 and cache.incr("n", 41) == 42
    cache.set_many({"x": 1, "y": [1, 2]}, ttl=timedelta(minutes=1))
    assert cache.get_many(k for k in ["x", "y", "nope"]) == {"x": 1, "y": [1, 2]}
    assert cache.delete("x") is True and cache.delete("x") is False
    assert cache.delete_many(["y", "nope"]) == 1
    assert sorted(k for k, _, _ in cache.items()) == ["a", "b", "n"]
    assert cache.get_or_set("g", lambda: {"made": True}) == {"made": True}
    assert cache.get_or_set("g", lambda: pytest.fail("factory called for a hit")) == {"made": True}
    stats = cache.stats()
    assert stats.hits >= 4 and stats.misses >= 2 and stats.sets >= 4
    assert cache.clear() == 4
    assert cache.get_many(["a", "b", "n", "g"]) == {}


def test_errors_are_the_async_ones(services: SyncServices) -> None:
    cache = services.cache("errors")
    with pytest.raises(InvalidKey, match="must not be empty"):
        cache.get("")
    with pytest.raises(SerializationError):
        cache.set("k", object())
    with pytest.raises(ValueError, match="ttl must be positive"):
        cache.set("k", 1, ttl=0)
    cache.set("text", "not a number")
    with pytest.raises(SerializationError):
        cache.incr("text")
    with pytest.raises(ZeroDivisionError):
        cache.get_or_set("boom", lambda: 1 / 0)
    assert cache.has("boom") is False  # nothing cached after a factory error
    with pytest.raises(ValueError, match="invalid cache name"):
        services.cache("bad name")


def test_get_or_set_factory_runs_in_the_calling_thread_and_may_use_the_api(
    services: SyncServices,
) -> None:
    import threading

    cache = services.cache("nested")
    cache.set("inner", 20)
    seen: list[int] = []

    def factory() -> int:
        seen.append(threading.get_ident())
        return int(cache.get("inner")) + 1  # a sync call from inside the factory

    assert cache.get_or_set("outer", factory) == 21
    assert seen == [threading.get_ident()]


def test_async_factory_is_refused(services: SyncServices) -> None:
    async def factory() -> int:
        return 1

    with pytest.raises(TypeError, match="plain function"):
        services.cache("f").get_or_set("k", factory)


async def test_call_from_a_running_event_loop_raises_instead_of_deadlocking(
    sync_settings: Any,
) -> None:
    services = SyncServices(sync_settings)
    with pytest.raises(AsyncContextError, match="running event loop"):
        services.start()
    with pytest.raises(AsyncContextError, match="use the async API"):
        services.cache("x").get("k")


def test_closed_services_raise_a_clear_error(sync_settings: Any) -> None:
    services = create_sync_services(sync_settings)
    with services:
        cache = services.cache("c")
        cache.set("k", 1)
    with pytest.raises(RedkeepError, match="closed"):
        cache.get("k")
    with pytest.raises(RedkeepError, match="closed"):
        services.cache("other")


def test_memory_backend_without_redis() -> None:
    with create_sync_services(make_settings(backend="memory")) as services:
        cache = services.cache("m")
        assert cache.mode == "MemoryCache"
        cache.set("k", [1, 2])
        assert cache.get("k") == [1, 2]
        job = services.queue().enqueue("echo", 1)
        assert services.queue().get_job(job.id) is not None


def test_fallback_serves_from_memory_during_an_outage_and_recovers(
    redis_server_factory: Any, prefix: str
) -> None:
    server = redis_server_factory()
    settings = make_settings(redis_url=server.url, key_prefix=prefix, breaker_failure_threshold=1)
    with create_sync_services(settings) as services:
        cache = services.cache("outage")
        cache.set("before", 1)
        server.stop()
        cache.set("during", 2)  # no error reaches the caller
        assert cache.get("during") == 2
        assert cache.mode == "fallback"
        assert services.health()["components"]["caches"]["caches"]["outage"]["status"] == (
            "fallback"
        )
        assert services.services.caches is not None
        assert services.services.caches.breaker.state in ("open", "half_open")
        server.start()
        deadline = time.monotonic() + 15
        while cache.mode != "redis":  # each call lets the recovery task advance
            assert time.monotonic() < deadline, "cache did not switch back to Redis"
            cache.get("during")
            time.sleep(0.05)
        assert server.cli("GET", f"{prefix}:cache:outage:during").strip() == "2"  # replayed
        stats = cache.stats()
        assert stats.fallback_writes >= 1 and stats.fallback_reads >= 1


def test_strict_startup_error_surfaces(prefix: str) -> None:
    from redkeep.services import StartupError

    url = f"redis://127.0.0.1:{free_port()}/0"
    services = create_sync_services(make_settings(redis_url=url, startup="strict"))
    with pytest.raises(StartupError, match="unreachable"):
        services.start()


def test_metrics_count_sync_calls(services: SyncServices) -> None:
    cache = services.cache("metered")
    for i in range(5):
        cache.set(f"k{i}", i)
        cache.get(f"k{i}")
    services.refresh_metrics()
    text = services.metrics.render().decode()
    assert 'cache="metered"' in text
    hits = [
        line
        for line in text.splitlines()
        if line.startswith("redkeep_cache_hits_total{") and 'cache="metered"' in line
    ]
    assert hits and float(hits[0].rsplit(" ", 1)[1]) == 5.0
    assert 'command="SET"' in text
