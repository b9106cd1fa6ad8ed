"""get_or_set single-flight in one process, and the cross-process Redis lock."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from redkeep.cache import CacheService, RedisCache
from redkeep.redis.mux import MuxClient


async def all_missed(cache: CacheService, n: int) -> None:
    """Wait until ``n`` callers saw the miss: each is then the leader or waits on it."""
    for _ in range(1000):
        if cache.stats().misses >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"only {cache.stats().misses} of {n} callers got their miss")


async def test_fifty_concurrent_callers_one_factory_call(cache: CacheService) -> None:
    calls = 0
    release = asyncio.Event()

    async def factory() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await release.wait()
        return {"value": 42}

    tasks = [asyncio.create_task(cache.get_or_set("hot", factory, ttl=60)) for _ in range(50)]
    await all_missed(cache, 50)
    release.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert calls == 1
    assert results == [{"value": 42}] * 50
    assert await cache.get("hot") == {"value": 42}


async def test_factory_error_reaches_every_waiter_and_is_not_cached(cache: CacheService) -> None:
    calls = 0
    release = asyncio.Event()

    async def failing() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        raise LookupError("upstream down")

    tasks = [asyncio.create_task(cache.get_or_set("k", failing)) for _ in range(20)]
    await all_missed(cache, 20)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert calls == 1
    assert all(isinstance(r, LookupError) and str(r) == "upstream down" for r in results)
    assert not await cache.has("k")
    assert await cache.get_or_set("k", lambda: 7) == 7


async def test_cancelled_leader_does_not_fail_waiters(make_cache: Callable[..., Any]) -> None:
    cache = await make_cache("memory")
    started = asyncio.Event()
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(0.1 if calls > 1 else 30)
        return "done"

    leader = asyncio.create_task(cache.get_or_set("k", slow))
    await started.wait()
    waiter = asyncio.create_task(cache.get_or_set("k", slow))
    await asyncio.sleep(0.01)
    leader.cancel()
    assert await asyncio.wait_for(waiter, 5) == "done"  # the waiter took over
    assert calls == 2
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_lock_waiter_in_same_process_other_cache(resp_client: MuxClient, prefix: str) -> None:
    """Two cache objects (as in two processes) on one key: the lock lets only one compute."""
    a = RedisCache(resp_client, "c", key_prefix=prefix, lock_timeout=5)
    b = RedisCache(resp_client, "c", key_prefix=prefix, lock_timeout=5)
    calls = 0

    async def factory() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)
        return "v"

    results = await asyncio.gather(a.get_or_set("k", factory), b.get_or_set("k", factory))
    assert results == ["v", "v"]
    assert calls == 1
    assert await resp_client.exists(f"{prefix}:cachelock:c:k") == 0  # released


async def test_lock_holder_failure_lets_waiter_compute(resp_client: MuxClient, prefix: str) -> None:
    a = RedisCache(resp_client, "c", key_prefix=prefix, lock_timeout=5)
    b = RedisCache(resp_client, "c", key_prefix=prefix, lock_timeout=5)

    async def failing() -> str:
        await asyncio.sleep(0.2)
        raise RuntimeError("boom")

    async def working() -> str:
        return "from-b"

    first = asyncio.create_task(a.get_or_set("k", failing))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(b.get_or_set("k", working))
    with pytest.raises(RuntimeError, match="boom"):
        await first
    assert await asyncio.wait_for(second, 5) == "from-b"


async def test_release_never_deletes_someone_elses_lock(
    resp_client: MuxClient, prefix: str
) -> None:
    a = RedisCache(resp_client, "c", key_prefix=prefix, lock_timeout=0.1)
    lock_key = f"{prefix}:cachelock:c:k"

    async def slow() -> str:
        await asyncio.sleep(0.3)  # outlives the 0.1 s lock
        await resp_client.set(lock_key, "someone-else", px=5000)
        return "v"

    assert await a.get_or_set("k", slow) == "v"
    assert await resp_client.get(lock_key) == "someone-else"


SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from redkeep.cache import RedisCache
    from redkeep.redis.mux import MuxClient

    url, prefix, lock = sys.argv[1], sys.argv[2], sys.argv[3]

    async def main():
        client = MuxClient(url)
        cache = RedisCache(client, "xp", key_prefix=prefix,
                           lock_timeout=10 if lock == "1" else None)

        async def factory():
            await client.incrby(prefix + ":factory-calls", 1)
            await asyncio.sleep(0.5)
            return {"pid": __import__("os").getpid()}

        # a barrier: both processes are connected and ready before either calls get_or_set
        await client.incrby(prefix + ":ready", 1)
        deadline = time.monotonic() + 30
        while await client.get(prefix + ":ready") != "2" and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        value = await cache.get_or_set("shared", factory, ttl=60)
        await client.close()
        print(json.dumps(value))

    asyncio.run(main())
    """
)


def run_two(redis_url: str, prefix: str, lock: bool) -> list[Any]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, redis_url, prefix, "1" if lock else "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outputs.append(json.loads(out))
    return outputs


async def test_cross_process_lock_prevents_stampede(
    redis_url: str, prefix: str, resp_client: MuxClient
) -> None:
    outputs = await asyncio.to_thread(run_two, redis_url, prefix, True)
    assert await resp_client.get(f"{prefix}:factory-calls") == "1"
    assert outputs[0] == outputs[1]  # both got the single computed value


async def test_without_lock_two_processes_both_compute(
    redis_url: str, prefix: str, resp_client: MuxClient
) -> None:
    """Control for the test above: the scenario does produce a stampede without the lock."""
    await asyncio.to_thread(run_two, redis_url, prefix, False)
    assert await resp_client.get(f"{prefix}:factory-calls") == "2"
