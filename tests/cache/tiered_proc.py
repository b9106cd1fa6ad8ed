"""One process of the 3-process tiered cache test (tests/cache/test_tiered_processes.py).

Usage: ``python -m tests.cache.tiered_proc ROLE URL KEY_PREFIX SECONDS MAX_LAG``, ROLE being
``writer`` or ``reader``. Both open cache ``shared`` through a CacheManager with
``cache_l1_enabled``; they print one JSON line of results on stdout when done.

- writer: sets keys ``k0..k{KEYS-1}`` to increasing integers (one counter), for SECONDS.
- reader: for SECONDS, repeatedly (1) reads a key's current version straight from Redis with a
  plain redis-py client (an *observation*: every later version is at least this), and (2) reads
  keys through the tiered cache. A cache read that starts at time *t* must return at least the
  newest version observed before ``t - MAX_LAG`` (the documented staleness bound); each read
  that does not is a violation. After the writer stopped it checks that every key converged.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import deque

import redis.asyncio as aredis

from redkeep.cache import CacheManager, TieredCache
from redkeep.config import Settings

KEYS = 20


async def writer(cache: TieredCache, seconds: float) -> dict[str, int]:
    version = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        version += 1
        await cache.set(f"k{version % KEYS}", version)
        await asyncio.sleep(0.001)
    return {"writes": version}


async def reader(
    cache: TieredCache, raw: aredis.Redis, prefix: str, seconds: float, max_lag: float
) -> dict[str, int]:
    observed: dict[str, deque[tuple[float, int]]] = {f"k{i}": deque() for i in range(KEYS)}
    reads = violations = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        key = f"k{random.randrange(KEYS)}"
        text = await raw.get(f"{prefix}:cache:shared:{key}")
        if text is not None:
            observed[key].append((time.monotonic(), int(text)))
        for _ in range(20):
            key = f"k{random.randrange(KEYS)}"
            start = time.monotonic()
            value = await cache.get(key)
            reads += 1
            floor = max((v for t, v in observed[key] if t <= start - max_lag), default=None)
            if floor is not None and (value is None or value < floor):
                violations += 1
                print(f"violation: {key}={value} < {floor}", file=sys.stderr)
        await asyncio.sleep(0.001)
    return {"reads": reads, "violations": violations}


async def converged(cache: TieredCache, raw: aredis.Redis, prefix: str) -> int:
    """Keys whose cached value differs from Redis once the channel caught up."""
    assert cache.invalidation is not None
    async with asyncio.timeout(10):
        await cache.invalidation.sync()
    wrong = 0
    for i in range(KEYS):
        text = await raw.get(f"{prefix}:cache:shared:k{i}")
        truth = None if text is None else int(text)
        if await cache.get(f"k{i}") != truth:
            wrong += 1
    return wrong


async def main() -> None:
    role, url, prefix, seconds, max_lag = sys.argv[1:6]
    settings = Settings(
        redis_url=url,
        key_prefix=prefix,
        cache_l1_enabled=True,
        cache_l1_max_lag=float(max_lag),
        connect_timeout=1.0,
        command_timeout=1.0,
    )
    raw = aredis.Redis.from_url(url, decode_responses=True)
    async with CacheManager(settings) as manager:
        cache = manager.get("shared")
        assert isinstance(cache, TieredCache) and cache.invalidation is not None
        async with asyncio.timeout(10):
            await cache.invalidation.sync()
        print("ready", flush=True)
        done = f"{prefix}:writer-done"
        if role == "writer":
            result: dict[str, int] = await writer(cache, float(seconds))
            await raw.set(done, 1)
        else:
            result = await reader(cache, raw, prefix, float(seconds), float(max_lag))
            # Convergence is checked once the writer has stopped (it may have become ready
            # later than this reader on a loaded machine), then a little later.
            async with asyncio.timeout(30):
                while not await raw.exists(done):
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            result["not_converged"] = await converged(cache, raw, prefix)
        stats = cache.stats()
        result.update(
            l1_hits=stats.l1_hits,
            l1_bypassed_reads=stats.l1_bypassed_reads,
            l1_invalidations=stats.l1_invalidations,
            channel_losses=cache.invalidation.losses,
        )
    await raw.aclose()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
