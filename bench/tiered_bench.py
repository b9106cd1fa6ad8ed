"""Tiered cache benchmark (not a test): L1 hits against Redis round trips, a Zipf workload, and
cross-process invalidation latency, all in the same run.

1. **Hit path** (1 coroutine, 100 B value): ops/s of raw redis-py ``GET`` + ``json.loads`` (one
   Redis round trip), redkeep ``RedisCache.get`` and ``TieredCache.get`` answered by its L1.
   Interleaved: every round times each backend in turn (rotating order). Target: L1 hit >= 20x
   the raw round trip.
2. **Zipf workload**: ``KEYS`` keys, Zipf(s=1.1) popularity, 95% reads by one cache and 5%
   writes by a second cache (its own client and listener, so invalidations go through Redis),
   L1 of ``KEYS / 10`` entries. The same workload runs over a plain ``RedisCache`` and over a
   ``TieredCache``; reported: ops/s, L1 hit ratio, Redis commands per operation from the
   server's ``total_commands_processed`` (hence a private server) and round trips per operation
   counted by the clients (a miss sends GET + PTTL in one round trip).
3. **Invalidation latency**: a separate writer *process* sets a new key every 2 ms; this process
   holds the L1 and records when each key's invalidation arrives. Latency = arrival minus the
   writer's time right before its SET (``time.monotonic`` is system-wide on Linux). p50/p99/max.

Redis: a private ``redis-server`` on a free loopback port (no persistence), stopped by PID at the
end (``REDKEEP_BENCH_REDIS_URL`` to use another server: the command counts then include other
clients' traffic). Env: ``REDKEEP_BENCH_N`` (hit-path ops per round, default 20000),
``REDKEEP_BENCH_REPEATS`` (rounds, default 5; medians reported), ``REDKEEP_BENCH_ZIPF_OPS``
(default 30000), ``REDKEEP_BENCH_INVALIDATIONS`` (default 2000).

    .venv/bin/python bench/tiered_bench.py
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis.asyncio as aredis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cache_bench import SMALL, cleanup_keys, start_redis

from redkeep.cache import InvalidationListener, RedisCache, TieredCache
from redkeep.redis.mux import MuxClient

N = int(os.environ.get("REDKEEP_BENCH_N", "20000"))
REPEATS = int(os.environ.get("REDKEEP_BENCH_REPEATS", "5"))
ZIPF_OPS = int(os.environ.get("REDKEEP_BENCH_ZIPF_OPS", "30000"))
INVALIDATIONS = int(os.environ.get("REDKEEP_BENCH_INVALIDATIONS", "2000"))
KEYS = 10_000
ZIPF_S = 1.1
WRITE_SHARE = 0.05


class RoundTrips:
    """A CommandObserver counting what the client sent: one per command or pipeline."""

    def __init__(self) -> None:
        self.count = 0

    def on_command(self, transport: str, command: str, seconds: float, error: str | None) -> None:
        self.count += 1


class Side:
    """One "process": its own client, RedisCache and (optionally) L1 with its listener."""

    def __init__(self, url: str, prefix: str, *, l1: bool, max_entries: int = 10_000) -> None:
        self.round_trips = RoundTrips()
        self.client = MuxClient(url, observer=self.round_trips)
        self.redis = RedisCache(self.client, "bench", key_prefix=prefix)
        self.listener = InvalidationListener(url, key_prefix=prefix) if l1 else None
        self.cache: RedisCache | TieredCache = self.redis
        if self.listener is not None:
            self.cache = TieredCache(self.redis, self.listener, max_entries=max_entries)

    async def ready(self) -> None:
        if self.listener is not None:
            async with asyncio.timeout(10):
                await self.listener.sync()

    async def close(self) -> None:
        await self.cache.close()
        if self.listener is not None:
            await self.listener.close()
        await self.client.close()


# -- 1. hit path -------------------------------------------------------------------------------


async def hit_path(url: str, prefix: str) -> dict[str, list[float]]:
    raw = aredis.Redis.from_url(url)
    plain = Side(url, prefix, l1=False)
    tiered = Side(url, prefix, l1=True)
    await plain.cache.set("hot", SMALL)
    await tiered.ready()
    assert await tiered.cache.get("hot") == SMALL
    assert await tiered.cache.get("hot") == SMALL

    async def raw_get() -> Any:
        return json.loads(await raw.get(f"{prefix}:cache:bench:hot"))

    ops: dict[str, Callable[[], Awaitable[Any]]] = {
        "raw redis-py GET+json": raw_get,
        "RedisCache.get": lambda: plain.cache.get("hot"),
        "TieredCache.get (L1 hit)": lambda: tiered.cache.get("hot"),
    }
    results: dict[str, list[float]] = {name: [] for name in ops}
    names = list(ops)
    try:
        for r in range(REPEATS):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                op = ops[name]
                n = N if "L1" in name else max(N // 10, 1000)  # round trips are slower
                start = time.perf_counter()
                for _ in range(n):
                    await op()
                results[name].append(n / (time.perf_counter() - start))
        stats = tiered.cache.stats()
        assert stats.l1_misses <= 2, "the hit path left L1: the channel lagged or was lost"
    finally:
        await raw.aclose()
        await plain.close()
        await tiered.close()
    return results


# -- 2. Zipf workload --------------------------------------------------------------------------


def zipf_keys(count: int, seed: int) -> list[str]:
    weights = [1 / (k**ZIPF_S) for k in range(1, KEYS + 1)]
    cumulative = list(itertools.accumulate(weights))
    rng = random.Random(seed)
    total = cumulative[-1]
    return [f"k{bisect.bisect_left(cumulative, rng.random() * total)}" for _ in range(count)]


async def commands_processed(url: str) -> int:
    r = aredis.Redis.from_url(url)
    try:
        return int((await r.info("stats"))["total_commands_processed"])
    finally:
        await r.aclose()


async def zipf_run(url: str, prefix: str, *, l1: bool) -> dict[str, float]:
    reader = Side(url, f"{prefix}z{int(l1)}", l1=l1, max_entries=KEYS // 10)
    writer = Side(url, f"{prefix}z{int(l1)}", l1=False)
    await writer.cache.set_many({f"k{i}": {"i": i, **SMALL} for i in range(KEYS)})
    await reader.ready()
    keys = zipf_keys(ZIPF_OPS, seed=7)
    rng = random.Random(11)
    before = await commands_processed(url)
    trips_before = reader.round_trips.count + writer.round_trips.count
    start = time.perf_counter()
    for i, key in enumerate(keys):
        if rng.random() < WRITE_SHARE:
            await writer.cache.set(key, {"i": i, **SMALL})
        else:
            await reader.cache.get(key)
    elapsed = time.perf_counter() - start
    trips = reader.round_trips.count + writer.round_trips.count - trips_before
    commands = await commands_processed(url) - before - 1  # minus our INFO
    stats = reader.cache.stats()
    await reader.close()
    await writer.close()
    reads = stats.l1_hits + stats.l1_misses + stats.l1_bypassed_reads
    return {
        "ops_per_s": ZIPF_OPS / elapsed,
        "l1_hit_ratio": stats.l1_hits / reads if reads else 0.0,
        "commands_per_op": commands / ZIPF_OPS,
        "round_trips_per_op": trips / ZIPF_OPS,
        "invalidations": stats.l1_invalidations,
    }


# -- 3. invalidation latency -------------------------------------------------------------------


def writer_process(url: str, prefix: str, count: int) -> None:
    """The writer side of 3. (run as a subprocess): prints {key: monotonic before SET}."""

    async def run() -> None:
        client = MuxClient(url)
        cache = RedisCache(client, "lat", key_prefix=prefix)
        sent: dict[str, float] = {}
        await cache.get("warm-up")
        for i in range(count):
            key = f"w{i}"
            sent[key] = time.monotonic()
            await cache.set(key, i)
            await asyncio.sleep(0.002)
        await client.close()
        print(json.dumps(sent))

    asyncio.run(run())


async def invalidation_latency(url: str, prefix: str) -> list[float]:
    listener = InvalidationListener(url, key_prefix=prefix)
    arrived: dict[str, float] = {}

    def on_key(key: str | None) -> None:
        if key is not None and key not in arrived:
            arrived[key] = time.monotonic()

    listener.subscribe("lat", on_key)
    async with asyncio.timeout(10):
        await listener.sync()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--writer", url, prefix, str(INVALIDATIONS),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    async with asyncio.timeout(10):
        await listener.sync()
    await listener.close()
    sent: dict[str, float] = json.loads(out)
    missing = [k for k in sent if k not in arrived]
    assert not missing, f"{len(missing)} invalidations never arrived"
    return sorted(arrived[k] - t for k, t in sent.items())


# -- report ------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


async def amain(url: str) -> None:
    prefix = f"rkbench:{uuid.uuid4().hex[:8]}"
    try:
        hits = await hit_path(url, prefix)
        plain = await zipf_run(url, prefix, l1=False)
        tiered = await zipf_run(url, prefix, l1=True)
        latencies = await invalidation_latency(url, prefix)
    finally:
        await cleanup_keys(url, prefix)
    print(
        f"redkeep tiered cache benchmark: python {sys.version.split()[0]}, redis-py "
        f"{version('redis')}, loop={'uvloop' if 'uvloop' in sys.modules else 'asyncio'}"
    )
    print(f"\n### Hit path, 1 coroutine, 100 B value (ops/s, median of {REPEATS})\n")
    print("| operation | ops/s | vs raw GET |")
    print("|---|---|---|")
    raw = statistics.median(hits["raw redis-py GET+json"])
    for name, values in hits.items():
        med = statistics.median(values)
        print(f"| {name} | {med:,.0f} | {med / raw:.1f}x |")
    print(f"\n### Zipf(s={ZIPF_S}) over {KEYS:,} keys, {ZIPF_OPS:,} ops, 5% writes (other client)")
    print(f"L1 of {KEYS // 10:,} entries\n")
    print("| cache | ops/s | L1 hit ratio | Redis commands / op | round trips / op |")
    print("|---|---|---|---|---|")
    for name, res in (("RedisCache", plain), ("TieredCache", tiered)):
        print(
            f"| {name} | {res['ops_per_s']:,.0f} | {res['l1_hit_ratio']:.1%} | "
            f"{res['commands_per_op']:.3f} | {res['round_trips_per_op']:.3f} |"
        )
    saved = 1 - tiered["commands_per_op"] / plain["commands_per_op"]
    trips_saved = 1 - tiered["round_trips_per_op"] / plain["round_trips_per_op"]
    print(
        f"\nSaved by the L1: {saved:.1%} of Redis commands (a miss sends GET + PTTL), "
        f"{trips_saved:.1%} of round trips"
    )
    ms = [x * 1000 for x in latencies]
    print(
        f"\n### Cross-process invalidation latency ({len(ms)} writes, writer SET -> reader's L1)"
        f"\n\np50 {pct(ms, 0.5):.3f} ms, p99 {pct(ms, 0.99):.3f} ms, max {ms[-1]:.3f} ms"
    )
    out = os.environ.get("REDKEEP_BENCH_JSON")
    if out:
        with open(out, "w", encoding="utf-8") as f:
            json.dump({"hit_path": hits, "zipf": {"redis": plain, "tiered": tiered},
                       "invalidation_ms": ms}, f, indent=1)  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        writer_process(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    url = os.environ.get("REDKEEP_BENCH_REDIS_URL")
    proc = workdir = None
    if not url:
        proc, url, workdir = start_redis()
    try:
        asyncio.run(amain(url))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        if workdir is not None:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
