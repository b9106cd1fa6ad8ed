"""Scenario 6: load. 200 concurrent tasks mix cache operations and enqueues through Services.

The full stack (``create_services`` on a private Redis: FallbackCache over RedisCache, the job
queue) runs flat out for the load window while a worker process drains the queue. Zero errors
are allowed, including errors a fallback would have hidden; every acknowledged job must be
processed. p50/p99 per kind of call are recorded.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redkeep.config import Settings
from redkeep.services import create_services
from tests.reliability.harness import Deadline, Figures, Latencies, scale, wait_until
from tests.reliability.jobs import run_counts
from tests.reliability.processes import WorkerPool

pytestmark = pytest.mark.slow

TASKS = 200
LOAD_SECONDS = scale(5.0, 30.0)
KEYS = 5000
DRAIN = scale(60.0, 120.0)
RUNS = "rel:runs"


@pytest.mark.timeout(LOAD_SECONDS + DRAIN + 60)
async def test_mixed_load_has_no_errors(
    redis_server_factory: Callable[..., Any],
    figures: Callable[[str, str], Figures],
    tmp_path: Path,
) -> None:
    fig = figures("load", "200 concurrent tasks: cache operations + enqueues")
    fig.bounds(tasks=TASKS, load_s=LOAD_SECONDS, keys=KEYS)
    server = redis_server_factory(maxmemory_policy="noeviction")
    settings = Settings(backend="redis", redis_url=server.url, key_prefix="rel", startup="strict")
    pool = WorkerPool(
        1,
        ["--url", server.url, "--queue", "load", "--key-prefix", "rel", "--runs-key", RUNS,
         "--job-seconds", "0", "--concurrency", "50"],
        tmp_path,
    )  # fmt: skip
    by_kind: dict[str, Latencies] = {}
    errors: list[str] = []
    enqueued: set[str] = set()
    async with create_services(settings) as services:
        assert services.client is not None
        fig.meta(redis_version=(await services.client.info("server"))["redis_version"])
        cache = services.cache("load")
        queue = services.queue("load")
        client = services.client
        load = Deadline(LOAD_SECONDS)

        async def task(t: int) -> None:
            rng = random.Random(t)
            n = 0
            while not load.expired:
                key = f"k{rng.randrange(KEYS)}"
                roll = rng.random()
                start = time.perf_counter()
                try:
                    if roll < 0.40:
                        kind = "get"
                        await cache.get(key)
                    elif roll < 0.65:
                        kind = "set"
                        await cache.set(key, {"t": t, "n": n, "pad": "x" * rng.randrange(200)}, 60)
                    elif roll < 0.72:
                        kind = "incr"
                        await cache.incr(f"c{t % 20}")
                    elif roll < 0.77:
                        kind = "get_many"
                        await cache.get_many([f"k{rng.randrange(KEYS)}" for _ in range(10)])
                    elif roll < 0.80:
                        kind = "delete"
                        await cache.delete(key)
                    else:
                        kind = "enqueue"
                        job = await queue.enqueue("record", {"t": t, "n": n})
                        enqueued.add(job.id)
                except Exception as exc:
                    errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                by_kind.setdefault(kind, Latencies()).add(time.perf_counter() - start)
                n += 1

        async def processed() -> bool:
            counts = await queue.counts()
            pending = counts["waiting"] + counts["delayed"] + counts["active"]
            return pending == 0 and int(await client.execute("HLEN", RUNS)) >= len(enqueued)

        try:
            pool.start()
            await asyncio.gather(*(task(t) for t in range(TASKS)))
            elapsed = load.elapsed
            stats = cache.stats()
            mode = getattr(cache, "mode", "redis")
            overall = Latencies()
            for lat in by_kind.values():
                overall.extend(lat)
            summary = overall.summary()
            fig.record(
                operations=summary["count"], ops_per_s=round(summary["count"] / elapsed),
                jobs=len(enqueued), errors=len(errors) + int(stats.errors),
                fallback_calls=int(stats.fallback_reads + stats.fallback_writes),
                p50_ms=summary["p50_ms"], p99_ms=summary["p99_ms"], max_ms=summary["max_ms"],
                **{kind: lat.summary() for kind, lat in sorted(by_kind.items())},
            )  # fmt: skip
            # Completed jobs beyond the retention limit are trimmed, so completion is checked
            # against the runs the worker's handler recorded.
            drained = await wait_until(
                processed, timeout=DRAIN, interval=0.5, what="enqueued jobs processed"
            )
            runs = await run_counts(client, RUNS)
            failed = (await queue.counts())["failed"]
        except BaseException:
            print(pool.logs())
            raise
        finally:
            pool.close()

    lost = sorted(i for i in enqueued if runs.get(i, 0) == 0)
    fig.record(lost=len(lost), failed=failed, drain_s=round(drained, 1))
    assert not errors, f"{len(errors)} calls failed, e.g. {errors[:3]}"
    assert stats.errors == 0 and mode == "redis", f"the fallback absorbed errors: {stats}"
    assert stats.fallback_reads + stats.fallback_writes == 0
    assert not lost, f"{len(lost)} acknowledged jobs not processed, e.g. {lost[:5]}"
    assert failed == 0, f"{failed} jobs failed"


async def test_pool_smaller_than_concurrency_starves_no_caller(redis_url: str, prefix: str) -> None:
    """200 tasks share the default pool of 50 connections for a few seconds: no call may fail.

    The pool must hand connections to waiting callers (a waiter must not time out while other
    callers keep re-acquiring connections thousands of times per second).
    """
    from redkeep.redis.mux import MuxClient

    client = MuxClient(redis_url, max_connections=50, command_timeout=2.0)
    errors: list[str] = []
    calls = 0
    window = Deadline(scale(4.0, 8.0))

    async def task(t: int) -> None:
        nonlocal calls
        while not window.expired:
            try:
                await client.get(f"{prefix}:pool:{t}")
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            calls += 1

    try:
        await asyncio.gather(*(task(t) for t in range(TASKS)))
    finally:
        await client.close()
    assert calls > TASKS
    assert not errors, f"{len(errors)} of {calls} calls failed, e.g. {errors[:2]}"
