"""TieredCache wiring: the L1 store's bounds and fill tokens, settings, CacheManager (RESP and
Upstash), Services health and metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redkeep.cache import CacheConfig, CacheManager, FallbackCache, RedisCache, TieredCache
from redkeep.cache._l1 import ENTRY_OVERHEAD, L1Store
from redkeep.cache.invalidation import parse_primaries
from redkeep.config import Settings
from redkeep.errors import ConfigError
from redkeep.services import create_services
from tests.cache.conftest import wait_until_fresh


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the L1 store ------------------------------------------------------------------------------


def fill(store: L1Store, key: str, text: str, ttl: float = 10.0) -> None:
    store.finish_fill(key, store.begin_fill(key), text, ttl)


def test_l1_store_is_an_lru_bounded_in_entries() -> None:
    store = L1Store(max_entries=2, max_bytes=10**6)
    fill(store, "a", "1")
    fill(store, "b", "2")
    assert store.get("a") == "1"  # a is now the most recent
    fill(store, "c", "3")
    assert (store.get("a"), store.get("b"), store.get("c")) == ("1", None, "3")
    assert store.evictions == 1


def test_l1_store_is_bounded_in_bytes() -> None:
    size = len("k1") + 50 + ENTRY_OVERHEAD
    store = L1Store(max_entries=100, max_bytes=2 * size)
    for i in range(1, 4):
        fill(store, f"k{i}", "x" * 50)
    assert len(store) == 2 and store.bytes == 2 * size
    assert store.get("k1") is None
    fill(store, "huge", "x" * (3 * size))  # larger than the whole L1: not kept at all
    assert store.get("huge") is None and len(store) == 2
    store.invalidate("k2")
    assert store.bytes == size


def test_l1_store_expires_entries_on_the_monotonic_clock() -> None:
    clock = Clock()
    store = L1Store(10, 10**6, clock=clock)
    fill(store, "k", "v", ttl=0.5)
    clock.now += 0.49
    assert store.get("k") == "v"
    clock.now += 0.02
    assert store.get("k") is None and len(store) == 0 and store.bytes == 0


def test_l1_fill_racing_an_invalidation_is_not_kept() -> None:
    store = L1Store(10, 10**6)
    token = store.begin_fill("k")
    store.invalidate("k")  # Redis reported a write while the GET reply was in flight
    store.finish_fill("k", token, "stale", 10.0)
    assert store.get("k") is None
    older = store.begin_fill("k")
    newer = store.begin_fill("k")  # a second fill of the same key supersedes the first
    store.finish_fill("k", older, "v1", 10.0)
    assert store.get("k") is None
    store.finish_fill("k", newer, "v2", 10.0)
    assert store.get("k") == "v2"
    token = store.begin_fill("k")
    store.clear()  # the channel was lost
    store.finish_fill("k", token, "v3", 10.0)
    assert store.get("k") is None


def test_parse_primaries_keeps_reachable_masters_only() -> None:
    nodes = "\n".join(
        [
            "a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460",
            "b2 127.0.0.1:7001@17001,host-b master - 0 0 2 connected 5461-10922",
            "c3 127.0.0.1:7002@17002 master,fail - 0 0 3 disconnected",
            "d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected",
            "e5 :0@0 master,noaddr - 0 0 4 disconnected",
        ]
    )
    assert parse_primaries(nodes) == {
        "127.0.0.1:7000": ("127.0.0.1", 7000),
        "127.0.0.1:7001": ("127.0.0.1", 7001),
    }


# -- settings and the manager ------------------------------------------------------------------


def test_l1_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="REDKEEP_CACHE_L1_TTL"):
        Settings(cache_l1_ttl=0)
    with pytest.raises(ConfigError, match="REDKEEP_CACHE_L1_MAX_BYTES"):
        Settings(cache_l1_max_bytes=0)
    s = Settings(cache_l1_enabled=True, cache_l1_max_lag=0.25)
    assert s.cache_l1_enabled and s.cache_l1_max_lag == 0.25


async def test_manager_builds_tiered_caches_from_settings(redis_url: str, prefix: str) -> None:
    s = Settings(
        redis_url=redis_url,
        key_prefix=prefix,
        cache_l1_enabled=True,
        cache_l1_max_entries=7,
        cache_l1_max_bytes=12345,
        cache_l1_ttl=3.0,
    )
    async with CacheManager(s, configs={"plain": CacheConfig(l1=False)}) as manager:
        cache = manager.get("pages")
        assert isinstance(cache, TieredCache)
        assert isinstance(cache.l2, FallbackCache)
        assert (cache.l1.max_entries, cache.l1.max_bytes, cache.l1_ttl) == (7, 12345, 3.0)
        assert isinstance(manager.get("plain"), FallbackCache)
        manager.configure("direct", backend="redis")
        direct = manager.get("direct")
        assert isinstance(direct, TieredCache) and isinstance(direct.l2, RedisCache)
        listener = manager.invalidation
        assert listener is not None and cache.invalidation is listener is direct.invalidation
        await wait_until_fresh(listener)
        await cache.set("k", [1, 2])
        await listener.sync()
        assert await cache.get("k") == [1, 2]
        assert await cache.get("k") == [1, 2]
        assert cache.stats().l1_hits == 1
    assert listener.state == "stopped"


async def test_manager_l1_off_by_default_and_per_cache_opt_in(redis_url: str, prefix: str) -> None:
    s = Settings(redis_url=redis_url, key_prefix=prefix)
    async with CacheManager(s, configs={"hot": CacheConfig(l1=True)}) as manager:
        assert isinstance(manager.get("cold"), FallbackCache)
        assert isinstance(manager.get("hot"), TieredCache)


@pytest.mark.upstash
async def test_upstash_gets_no_l1_unless_the_ttl_bound_is_accepted(
    upstash_emulator: Any, prefix: str
) -> None:
    base: dict[str, Any] = {
        "REDKEEP_UPSTASH_URL": upstash_emulator.url,  # field aliases: env-style names
        "REDKEEP_UPSTASH_TOKEN": upstash_emulator.token,
        "key_prefix": prefix,
        "cache_l1_enabled": True,
    }
    async with CacheManager(Settings(**base)) as manager:
        assert isinstance(manager.get("c"), FallbackCache)  # REST pushes nothing: no L1
        assert manager.invalidation is None
    s = Settings(**base, cache_l1_without_invalidation=True, cache_l1_ttl=0.3)
    async with CacheManager(s) as manager:
        cache = manager.get("c")
        assert isinstance(cache, TieredCache) and cache.invalidation is None
        assert cache.l1_status()["staleness_bound"] == 0.3
        await cache.set("k", "v1")
        assert await cache.get("k") == "v1"
        await cache.l2.set("k", "v2")  # a write this L1 is never told about
        assert await cache.get("k") == "v1"  # stale, within the documented bound...
        await asyncio.sleep(0.35)
        assert await cache.get("k") == "v2"  # ...and no longer than cache_l1_ttl


# -- services: health and metrics --------------------------------------------------------------


async def test_health_and_metrics_show_the_l1_per_cache(redis_url: str, prefix: str) -> None:
    s = Settings(redis_url=redis_url, key_prefix=prefix, cache_l1_enabled=True)
    async with create_services(s) as services:
        cache = services.cache("pages")
        assert isinstance(cache, TieredCache) and cache.invalidation is not None
        await wait_until_fresh(cache.invalidation)
        await cache.set("k", "v")
        await cache.invalidation.sync()
        await cache.get("k")
        await cache.get("k")
        report = await services.health()
        l1 = report["components"]["caches"]["caches"]["pages"]["l1"]
        assert l1["state"] == "on" and l1["invalidation"] == "up"
        assert l1["entries"] == 1 and l1["staleness_bound"] == s.cache_l1_max_lag
        await services.refresh_metrics()
        text = services.metrics.render().decode()
        assert 'redkeep_cache_l1_hits_total{cache="pages"} 1.0' in text
        assert 'redkeep_cache_l1_misses_total{cache="pages"} 1.0' in text
        assert 'redkeep_cache_l1_bypassed{cache="pages"} 0.0' in text
        assert 'redkeep_cache_l1_entries{cache="pages"} 1.0' in text
        assert "redkeep_cache_l1_invalidations_total" in text
        await cache.invalidation.close()  # the channel is gone: bypassed, and it shows
        report = await services.health()
        l1 = report["components"]["caches"]["caches"]["pages"]["l1"]
        assert l1["state"] == "bypassed" and "reason" in l1
        await services.refresh_metrics()
        assert 'redkeep_cache_l1_bypassed{cache="pages"} 1.0' in services.metrics.render().decode()


def test_sync_api_uses_the_l1_during_bursts_of_calls(redis_url: str, prefix: str) -> None:
    import time

    from redkeep.sync import create_sync_services

    s = Settings(redis_url=redis_url, key_prefix=prefix, cache_l1_enabled=True)
    with create_sync_services(s) as services:
        cache = services.cache("pages")
        cache.set("k", {"v": 1})
        deadline = time.monotonic() + 10
        while cache.aio.stats().l1_hits == 0:  # the channel comes up while calls run the loop
            assert cache.get("k") == {"v": 1}
            assert time.monotonic() < deadline
        assert isinstance(cache.aio, TieredCache)
        cache.set("k", {"v": 2})  # read-your-writes through the blocking API too
        assert cache.get("k") == {"v": 2}
