"""MemoryCache specifics: LRU bound, monotonic TTL, isolation of stored values, threads."""

from __future__ import annotations

import asyncio
import threading

import pytest

from redkeep.cache import MemoryCache
from redkeep.cache.memory import ENTRY_OVERHEAD
from redkeep.config import Settings
from redkeep.errors import PayloadTooLarge


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_lru_evicts_least_recently_used() -> None:
    c = MemoryCache("m", max_entries=3)
    for k in ("a", "b", "c"):
        await c.set(k, k)
    assert await c.get("a") == "a"  # a is now most recently used
    await c.set("d", "d")  # evicts b
    assert await c.get("b") is None
    assert await c.get_many(["a", "c", "d"]) == {"a": "a", "c": "c", "d": "d"}
    assert len(c) == 3
    assert c.stats().evictions == 1
    await c.set("c", "c2")  # overwrite refreshes recency without growing
    await c.set("e", "e")  # evicts a (LRU after the get_many order a, c, d then c)
    assert await c.get("a") is None
    assert len(c) == 3


async def test_ttl_uses_injected_monotonic_clock() -> None:
    clock = Clock()
    c = MemoryCache("m", clock=clock)
    await c.set("k", 1, ttl=10)
    clock.now += 9.99
    assert await c.get("k") == 1
    assert await c.ttl("k") == pytest.approx(0.01)
    clock.now += 0.01
    assert await c.get("k") is None  # exactly at expiry: gone
    assert not await c.has("k")
    assert await c.add("k", 2) is True  # an expired entry does not block add
    assert await c.incr("n") == 1


async def test_expired_entries_never_returned_anywhere() -> None:
    clock = Clock()
    c = MemoryCache("m", clock=clock)
    await c.set_many({"a": 1, "b": 2}, ttl=1)
    await c.set("c", 3)
    clock.now += 1
    assert await c.get_many(["a", "b", "c"]) == {"c": 3}
    assert [k async for k, _, _ in c.items()] == ["c"]
    assert await c.delete("a") is False
    assert await c.touch("b", 10) is False
    assert await c.clear() == 1


async def test_stored_values_are_copies() -> None:
    c = MemoryCache("m")
    value = {"list": [1]}
    await c.set("k", value)
    value["list"].append(2)
    got = await c.get("k")
    assert got == {"list": [1]}
    got["list"].append(3)
    assert await c.get("k") == {"list": [1]}


async def test_incr_keeps_ttl_and_rejects_overflow() -> None:
    clock = Clock()
    c = MemoryCache("m", clock=clock)
    await c.set("n", 5, ttl=10)
    clock.now += 4
    assert await c.incr("n") == 6
    assert await c.ttl("n") == pytest.approx(6)
    await c.set("big", 2**63 - 1)
    with pytest.raises(Exception, match="64-bit"):
        await c.incr("big")


def test_many_threads_and_tasks() -> None:
    c = MemoryCache("m", max_entries=500)
    errors: list[BaseException] = []

    async def work(tid: int) -> None:
        for i in range(300):
            key = f"k{(tid * 7 + i) % 470}"
            await c.set(key, i)
            await c.get(key)
            await c.incr(f"n{tid}")
            if i % 50 == 0:
                await c.delete_many([key, "k1"])

    async def main(tid: int) -> None:
        await asyncio.wait_for(asyncio.gather(*(work(tid * 10 + j) for j in range(5))), 60)

    def thread(tid: int) -> None:
        try:
            asyncio.run(main(tid))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(c) <= 500
    counters = [asyncio.run(c.get(f"n{t * 10 + j}")) for t in range(4) for j in range(5)]
    assert counters == [300] * 20  # 470 + 20 keys fit: no eviction, no lost update


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryCache("m", max_entries=0)
    with pytest.raises(ValueError, match="cache name"):
        MemoryCache("bad name")
    with pytest.raises(ValueError, match="cache name"):
        MemoryCache("a:b")
    with pytest.raises(ValueError, match="ttl"):
        MemoryCache("m", default_ttl=0)


async def test_byte_limit_evicts_lru_and_refuses_an_entry_larger_than_the_cache() -> None:
    text = '"' + "x" * 1000 + '"'  # the encoded value
    entry = len("k00") + len(text) + ENTRY_OVERHEAD
    cache = MemoryCache("bytes", max_entries=1000, max_bytes=3 * entry)
    for i in range(3):
        await cache.set(f"k{i:02d}", "x" * 1000)
    assert cache.size_bytes == 3 * entry
    await cache.get("k00")  # k00 is now the most recent: k01 goes first
    await cache.set("k03", "x" * 1000)
    assert await cache.has("k01") is False
    assert [await cache.has(f"k{i:02d}") for i in (0, 2, 3)] == [True, True, True]
    assert cache.stats().evictions == 1
    assert cache.size_bytes == 3 * entry
    with pytest.raises(PayloadTooLarge):
        await cache.set("huge", "y" * (3 * entry))
    assert await cache.has("huge") is False and len(cache) == 3
    await cache.delete("k00")
    await cache.set("k02", "short")  # replacing a value gives its bytes back
    assert cache.size_bytes == 2 * entry - len(text) + len('"short"')
    await cache.clear()
    assert cache.size_bytes == 0


async def test_the_services_bound_memory_caches_by_bytes() -> None:
    from redkeep.services import create_services

    settings = Settings(backend="memory", cache_max_bytes=20_000)
    async with create_services(settings) as services:
        cache = services.cache("bounded")
        for i in range(100):
            await cache.set(f"key-{i}", "v" * 1000)
        assert isinstance(cache, MemoryCache) and cache.size_bytes <= 20_000
        assert len(cache) < 100 and cache.stats().evictions == 100 - len(cache)
