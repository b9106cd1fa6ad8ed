"""Deduplication benchmark (not a test): enqueue with a dedup key vs without, same run.

Against a private redis-server, interleaved rounds of N sequential single enqueues of each case
(medians of the rounds): plain enqueue; enqueue with a new dedup key each time (creates a job
and an entry); enqueue with one repeated dedup key (a hit: returns the existing job, writes
nothing); enqueue with debounce on one key (replaces the pending job). Ops/s and the server's
script time per call (``INFO commandstats``, EVALSHA usec)::

    .venv/bin/python bench/dedup_bench.py

Env: ``REDKEEP_BENCH_N`` enqueues per case per round (default 10000), ``REDKEEP_BENCH_ROUNDS``
(default 5).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis
from _common import private_redis, script_usec

from redkeep.queue import RedisJobQueue
from redkeep.redis.mux import MuxClient

N = int(os.environ.get("REDKEEP_BENCH_N", "10000"))
ROUNDS = int(os.environ.get("REDKEEP_BENCH_ROUNDS", "5"))


def _cases(q: RedisJobQueue) -> dict[str, Callable[[int], Awaitable[Any]]]:
    return {
        "plain": lambda i: q.enqueue("noop"),
        "dedup, new key": lambda i: q.enqueue("noop", dedup_key=f"k{i}-{time.time_ns()}"),
        "dedup, hit": lambda i: q.enqueue("noop", dedup_key="same"),
        "debounce, same key": lambda i: q.enqueue("noop", i, dedup_key="d", debounce=60),
    }


async def run(url: str, r: redis.Redis) -> dict[str, list[tuple[float, float]]]:
    client = MuxClient(url)
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        for rnd in range(ROUNDS):
            q = RedisJobQueue(client, f"bench-dedup-{rnd}")
            await q.enqueue("warm")
            for case, call in _cases(q).items():
                r.config_resetstat()
                t0 = time.perf_counter()
                for i in range(N):
                    await call(i)
                wall = time.perf_counter() - t0
                results.setdefault(case, []).append((N / wall, script_usec(r) / N))
    finally:
        await client.close()
    return results


def main() -> None:
    with private_redis("rk-dedup-") as (url, r):
        results = asyncio.run(run(url, r))
        plain = statistics.median(ops for ops, _ in results["plain"])
        print(f"N={N} per case per round, {ROUNDS} rounds, medians")
        for case, rows in results.items():
            ops = statistics.median(o for o, _ in rows)
            usec = statistics.median(u for _, u in rows)
            print(f"  {case:<20} {ops:9.0f} enqueues/s  x{ops / plain:5.2f}  script {usec:6.2f} µs")


if __name__ == "__main__":
    main()
