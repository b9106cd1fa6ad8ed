"""Enqueue outbox benchmark (not a test): what the outbox costs while Redis is up, and how fast
it holds and relays while Redis is away, next to a raw redis-py round trip in the same run.

Cases (ops/s, medians of the rounds; the rounds interleave the cases so that load from other
processes hits them alike):

- ``raw_set``: redis-py asyncio ``SET`` one by one (a round-trip reference);
- ``enqueue`` / ``enqueue_outbox``: ``queue.enqueue`` one by one without / with an outbox attached
  (Redis up: the outbox only adds its checks), called in turn;
- ``get_job`` / ``get_job_outbox``: ``queue.get_job`` without / with an outbox, in turn (nothing
  held: the file is not read);
- ``hold_seq``: enqueues held in the outbox one by one (breaker open: one fsync per enqueue);
- ``hold_c32``: 32 concurrent producers held (writes grouped, one fsync per group);
- ``relay``: held jobs per second relayed to Redis once the breaker closes.

Redis: a private ``redis-server`` on a free loopback port (stopped by PID at the end). The outbox
file is in a temporary directory (set ``REDKEEP_BENCH_DIR`` to measure another disk). Env:
``REDKEEP_BENCH_N`` ops per case and round (default 2000), ``REDKEEP_BENCH_REPEATS`` rounds
(default 5).

    .venv/bin/python bench/outbox_bench.py
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aredis
from cache_bench import start_redis

from redkeep.queue import JobSpec, Outbox, RedisJobQueue
from redkeep.redis.mux import MuxClient
from redkeep.resilience import CircuitBreaker

N = int(os.environ.get("REDKEEP_BENCH_N", "2000"))
REPEATS = int(os.environ.get("REDKEEP_BENCH_REPEATS", "5"))
PAYLOAD = {"user": 42, "template": "welcome", "pad": "x" * 60}


async def timed(n: int, fn: Callable[[int], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for i in range(n):
        await fn(i)
    return n / (time.perf_counter() - start)


async def timed_pair(
    n: int, a: Callable[[int], Awaitable[object]], b: Callable[[int], Awaitable[object]]
) -> tuple[float, float]:
    """ops/s of ``a`` and of ``b``, called in turn (a, b, a, b...) so that noise hits both."""
    spent = [0.0, 0.0]
    clock = time.perf_counter
    for i in range(n):
        for side, fn in enumerate((a, b)):
            start = clock()
            await fn(i)
            spent[side] += clock() - start
    return n / spent[0], n / spent[1]


async def round_(url: str, workdir: Path, results: dict[str, list[float]]) -> None:
    token = uuid.uuid4().hex[:8]
    raw = aredis.Redis.from_url(url)
    client = MuxClient(url)
    plain = RedisJobQueue(client, f"plain-{token}", key_prefix="bench")
    breaker = CircuitBreaker("queue", reset_timeout=3600)
    path = workdir / f"outbox-{token}.sqlite3"
    async with Outbox(path, namespace="bench", breaker=breaker) as outbox:
        # The same queue twice: one object without the outbox, one with it.
        held = RedisJobQueue(client, plain.name, key_prefix="bench")
        outbox.attach(held)
        ids: list[str] = []

        async def enqueue_plain(i: int) -> None:
            ids.append((await plain.enqueue("send", PAYLOAD)).id)

        results["raw_set"].append(await timed(N, lambda i: raw.set(f"bench:{token}:{i}", "x")))
        a, b = await timed_pair(N, enqueue_plain, lambda i: held.enqueue("send", PAYLOAD))
        results["enqueue"].append(a)
        results["enqueue_outbox"].append(b)
        a, b = await timed_pair(N, lambda i: plain.get_job(ids[i]), lambda i: held.get_job(ids[i]))
        results["get_job"].append(a)
        results["get_job_outbox"].append(b)

        breaker.trip()
        results["hold_seq"].append(await timed(N, lambda i: held.enqueue("send", PAYLOAD)))
        start = time.perf_counter()
        per = N // 32
        await asyncio.gather(
            *(timed(per, lambda i: held.enqueue("send", PAYLOAD)) for _ in range(32))
        )
        results["hold_c32"].append(per * 32 / (time.perf_counter() - start))
        await held.enqueue_many([JobSpec("send", PAYLOAD) for _ in range(N)])
        count = await outbox.count(held.name)
        start = time.perf_counter()
        breaker.reset()
        if not await outbox.drained(120):
            sys.exit("the relay did not drain the outbox")
        results["relay"].append(count / (time.perf_counter() - start))
    await client.close()
    await raw.aclose()


async def main() -> None:
    proc, url, redis_dir = start_redis()
    base = os.environ.get("REDKEEP_BENCH_DIR")
    workdir = Path(tempfile.mkdtemp(prefix="redkeep-outbox-bench-", dir=base))
    results: dict[str, list[float]] = {
        k: []
        for k in (
            "raw_set", "enqueue", "enqueue_outbox", "get_job", "get_job_outbox", "hold_seq",
            "hold_c32", "relay",
        )
    }  # fmt: skip
    try:
        for r in range(REPEATS):
            await round_(url, workdir, results)
            print(f"round {r + 1}/{REPEATS} done", file=sys.stderr)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(redis_dir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    medians = {k: round(statistics.median(v)) for k, v in results.items()}
    print(json.dumps({"n": N, "repeats": REPEATS, "ops_per_s": medians}, indent=2))
    print(f"enqueue_outbox / enqueue: {medians['enqueue_outbox'] / medians['enqueue']:.2f}")
    print(f"get_job_outbox / get_job: {medians['get_job_outbox'] / medians['get_job']:.2f}")
    print(f"enqueue / raw_set: {medians['enqueue'] / medians['raw_set']:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
