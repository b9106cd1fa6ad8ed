"""Scenario 8: compatibility. The same operation script gives the same results on memory and Redis.

A seeded script of cache operations runs against MemoryCache and RedisCache, and a script of
queue operations (with worker runs in between) against MemoryJobQueue and RedisJobQueue. Every
observable result (return values, raised error types, job states, orderings, counts) is
recorded in a backend-neutral form; the two transcripts must be identical.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from redkeep.cache import MemoryCache, RedisCache
from redkeep.cache.base import CacheService
from redkeep.queue import Backoff, Job, JobQueue, MemoryJobQueue, RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient
from tests.reliability.harness import Figures, scale, wait_until

pytestmark = pytest.mark.slow

CACHE_OPS = scale(400, 3000)
QUEUE_OPS = scale(150, 600)
SEED = 20261127
VALUES: list[Any] = [
    0, 1, -7, 2**70, 3.5, "", "text", "ünïcødé {tag} *glob*", None, True, [1, "a", None],
    {"nested": {"list": [1, 2]}}, (1, 2), b"\x00\xff bytes", {"__rk__": "looks like a tag"},
]  # fmt: skip
KEYS = [f"k{i}" for i in range(12)] + ["{hash}tag", "with space", "ключ"]
COUNTERS = ["c0", "c1", "c2"]


def _ttl_bucket(ttl: float | None) -> str:
    if ttl is None:
        return "none"
    return "long" if ttl > 30 else "short" if ttl > 0 else f"bad:{ttl}"


async def _cache_script(cache: CacheService, seed: int) -> list[Any]:
    rng = random.Random(seed)
    out: list[Any] = []

    async def call(op: str, fn: Callable[[], Any]) -> None:
        try:
            result = await fn()
        except Exception as exc:
            out.append((op, "raised", type(exc).__name__))
        else:
            out.append((op, result))

    for _ in range(CACHE_OPS):
        key = rng.choice(KEYS)
        value = rng.choice(VALUES)
        ttl = rng.choice([None, None, 60, 3600])
        roll = rng.randrange(100)
        if roll < 20:
            await call("get", lambda k=key: cache.get(k, "<miss>"))
        elif roll < 35:
            await call("set", lambda k=key, v=value, t=ttl: cache.set(k, v, t))
        elif roll < 42:
            await call("add", lambda k=key, v=value, t=ttl: cache.add(k, v, t))
        elif roll < 49:
            await call("delete", lambda k=key: cache.delete(k))
        elif roll < 55:
            await call("has", lambda k=key: cache.has(k))
        elif roll < 63:
            ck = rng.choice([*COUNTERS, key])
            await call("incr", lambda k=ck, d=rng.randint(-5, 5): cache.incr(k, d))
        elif roll < 68:
            ks = rng.sample(KEYS, 4)
            await call("get_many", lambda ks=ks: _sorted_dict(cache.get_many(ks)))
        elif roll < 73:
            pairs = {k: rng.choice(VALUES) for k in rng.sample(KEYS, 3)}
            await call("set_many", lambda p=pairs, t=ttl: cache.set_many(p, t))
        elif roll < 77:
            ks = rng.sample(KEYS, 3)
            await call("delete_many", lambda ks=ks: cache.delete_many(ks))
        elif roll < 83:
            await call("ttl", lambda k=key: _bucket(cache.ttl(k)))
        elif roll < 88:
            await call("touch", lambda k=key, t=rng.choice([60, 3600]): cache.touch(k, t))
        elif roll < 93:
            await call("get_or_set", lambda k=key, v=value: cache.get_or_set(k, lambda: v, 60))
        elif roll < 96:
            bad = rng.choice(["", None, 5, "x" * 2000])
            await call("bad_key", lambda b=bad: cache.get(b))
        elif roll < 98:
            await call("bad_value", lambda k=key: cache.set(k, object()))
        else:
            await call("clear", cache.clear)
    items = [(k, v, _ttl_bucket(t)) async for k, v, t in cache.items()]
    out.append(("items", sorted(items, key=lambda item: item[0])))
    return out


async def _sorted_dict(coro: Any) -> list[tuple[str, Any]]:
    return sorted((await coro).items())


async def _bucket(coro: Any) -> str:
    return _ttl_bucket(await coro)


def _job_view(job: Job | None) -> Any:
    if job is None:
        return None
    error = (job.error.type, job.error.message) if job.error else None
    return (
        job.id, job.name, job.status.value, job.priority, job.attempts, job.max_attempts,
        job.payload, job.result, error,
    )  # fmt: skip


async def _run_worker(queue: JobQueue, long_delayed: set[str]) -> None:
    async def ok(job: Job) -> Any:
        return job.payload

    async def fail(job: Job) -> None:
        raise ValueError(f"boom {job.id}")

    worker = Worker(queue, {"ok": ok, "fail": fail}, concurrency=1, lease=10.0,
                    handle_signals=False)  # fmt: skip
    runner = asyncio.create_task(worker.run())

    async def idle() -> bool:
        counts = await queue.counts()
        delayed = await queue.list_jobs("delayed", 0, 1000)
        return counts["waiting"] + counts["active"] == 0 and {j.id for j in delayed} <= long_delayed

    try:
        await wait_until(idle, timeout=30.0, interval=0.02, what="worker idle")
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner, 10)


async def _queue_script(queue: JobQueue, seed: int) -> list[Any]:
    rng = random.Random(seed)
    out: list[Any] = []
    ids: list[str] = []
    long_delayed: set[str] = set()

    async def call(op: str, fn: Callable[[], Any]) -> None:
        try:
            result = await fn()
        except Exception as exc:
            out.append((op, "raised", type(exc).__name__))
        else:
            out.append((op, result))

    for n in range(QUEUE_OPS):
        roll = rng.randrange(100)
        some = rng.choice(ids) if ids else "none"
        if roll < 35:
            job_id = some if ids and rng.random() < 0.1 else f"j{n}"
            name = rng.choice(["ok", "ok", "fail", "nohandler"])
            payload = rng.choice([None, 1, "p", {"n": n}, [n, n]])
            prio = rng.choice([0, 0, 5, -5])
            delay = rng.choice([None, None, None, 3600.0])
            attempts = rng.choice([1, 2])

            async def enqueue(
                i: str = job_id, nm: str = name, p: Any = payload, pr: int = prio,
                d: float | None = delay, a: int = attempts,
            ) -> Any:  # fmt: skip
                job = await queue.enqueue(nm, p, job_id=i, priority=pr, delay=d, max_attempts=a)
                if i not in ids:
                    ids.append(i)
                if job.status == "delayed":  # new, or re-created after a purge
                    long_delayed.add(i)
                return _job_view(job)[:4]

            await call("enqueue", enqueue)
        elif roll < 40:
            await call("enqueue_bad", lambda: queue.enqueue("", None))
        elif roll < 50:
            await call("get_job", lambda i=some: _view(queue.get_job(i)))
        elif roll < 57:
            await call("cancel", lambda i=some: queue.cancel(i))
        elif roll < 62:
            await call("retry", lambda i=some: queue.retry(i))
        elif roll < 70:
            await call("counts", queue.counts)
        elif roll < 80:
            st = rng.choice(["waiting", "delayed", "completed", "failed", "cancelled", "bogus"])
            await call("list_jobs", lambda s=st: _ids(queue.list_jobs(s, 0, 1000), s))
        elif roll < 83:
            st = rng.choice(["completed", "failed", "cancelled", "waiting"])
            await call("purge", lambda s=st: queue.purge(s))
        else:
            await _run_worker(queue, long_delayed)
            out.append(("worker", await queue.counts()))
    await _run_worker(queue, long_delayed)
    out.append(("final", [_job_view(await queue.get_job(i)) for i in ids]))
    return out


async def _view(coro: Any) -> Any:
    return _job_view(await coro)


async def _ids(coro: Any, status: str) -> list[str]:
    ids = [j.id for j in await coro]
    # Finished jobs are listed newest first and delayed ones by run_at: both are timestamps of
    # this run (Redis has millisecond resolution), and the order among equal timestamps is not
    # part of the contract. Waiting jobs have a deterministic order (priority, then FIFO).
    return ids if status == "waiting" else sorted(ids)


def _first_difference(a: list[Any], b: list[Any]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"step {i}: memory {x!r} != redis {y!r}"
    return f"lengths differ: {len(a)} != {len(b)}"


async def test_cache_script_gives_identical_results_on_memory_and_redis(
    redis_url: str, prefix: str, figures: Callable[..., Figures]
) -> None:
    fig = figures("compatibility", "Memory vs Redis: identical transcripts", part="cache")
    client = MuxClient(redis_url)
    start = time.perf_counter()
    try:
        memory = await _cache_script(MemoryCache("compat", max_key_length=1024), SEED)
        redis = await _cache_script(
            RedisCache(client, "compat", key_prefix=prefix, max_key_length=1024), SEED
        )
    finally:
        await client.close()
    same = sum(1 for a, b in zip(memory, redis, strict=False) if a == b)
    errors = sum(1 for step in memory if len(step) == 3 and step[1] == "raised")
    fig.record(
        operations=len(memory), identical=same, differences=len(memory) - same,
        typed_errors_compared=errors, seconds=round(time.perf_counter() - start, 2),
    )  # fmt: skip
    assert memory == redis, _first_difference(memory, redis)


async def test_queue_script_gives_identical_results_on_memory_and_redis(
    redis_url: str, prefix: str, figures: Callable[..., Figures]
) -> None:
    fig = figures("compatibility", "Memory vs Redis: identical transcripts", part="queue")
    client = MuxClient(redis_url)
    backoff = Backoff(0.01, 0.01, "fixed", jitter=False)
    try:
        memory = await _queue_script(MemoryJobQueue("compat", backoff=backoff), SEED)
        redis = await _queue_script(
            RedisJobQueue(client, "compat", key_prefix=prefix, backoff=backoff), SEED
        )
    finally:
        await client.close()
    same = sum(1 for a, b in zip(memory, redis, strict=False) if a == b)
    fig.record(
        operations=len(memory), identical=same, differences=len(memory) - same,
        jobs=len(memory[-1][1]),
    )  # fmt: skip
    assert memory == redis, _first_difference(memory, redis)
