"""Scenario 4: connection resets. ``CLIENT KILL TYPE normal`` cuts every client under load.

Cache writers, job producers and an in-process worker share one client on a private server while
an admin connection kills all normal client connections several times a second. Every call
must succeed: the client reconnects and sends again what is safe to send again; an enqueue cut
after it was sent raises ``OutcomeUnknown`` and the producer repeats it with the same job id, as
the docs tell callers to (counted in the figures). Every acknowledged write must be readable
afterwards and every acknowledged job must be processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from redkeep.cache import RedisCache
from redkeep.errors import OutcomeUnknown
from redkeep.queue import Job, RedisJobQueue, RetentionPolicy, Worker
from redkeep.redis.mux import MuxClient
from tests.reliability.harness import Deadline, Figures, Latencies, scale, wait_until
from tests.reliability.jobs import all_finished, statuses

pytestmark = pytest.mark.slow

LOAD_SECONDS = scale(5.0, 20.0)
KILL_INTERVAL = 0.25
MAX_KILLS = scale(30, 100)
WRITERS = 20
PRODUCERS = 4
DRAIN = scale(30.0, 60.0)


@pytest.mark.timeout(LOAD_SECONDS + DRAIN + 60)
async def test_client_kill_under_load_loses_no_write(
    redis_server_factory: Callable[..., Any], figures: Callable[[str, str], Figures]
) -> None:
    fig = figures("connection_reset", "CLIENT KILL TYPE normal under load")
    fig.bounds(
        load_s=LOAD_SECONDS, kill_interval_s=KILL_INTERVAL, max_kills=MAX_KILLS,
        writers=WRITERS, producers=PRODUCERS,
    )  # fmt: skip
    server = redis_server_factory()
    client = MuxClient(server.url, command_timeout=2.0)
    admin = MuxClient(server.url, max_connections=1)
    fig.meta(redis_version=(await admin.info("server"))["redis_version"])
    cache = RedisCache(client, "reset", key_prefix="rel")
    # Keep every finished job: the check reads each one back, and a fast machine enqueues more
    # than the default retention (10,000 completed) within the load window.
    keep_all = RetentionPolicy(completed_max=10_000_000, failed_max=10_000_000)
    queue = RedisJobQueue(client, "reset", key_prefix="rel", retention=keep_all)

    written: dict[str, int] = {}
    enqueued: set[str] = set()
    repeated: list[str] = []
    processed: set[str] = set()
    errors: list[str] = []
    latencies = Latencies()
    load = Deadline(LOAD_SECONDS)

    async def writer(w: int) -> None:
        n = 0
        while not load.expired:
            key = f"w{w}-{n}"
            start = time.perf_counter()
            try:
                await cache.set(key, n)
            except Exception as exc:
                errors.append(f"set {key}: {type(exc).__name__}: {exc}")
            else:
                written[key] = n
            latencies.add(time.perf_counter() - start)
            n += 1
            await asyncio.sleep(0.002)

    async def producer(p: int) -> None:
        n = 0
        while not load.expired:
            job_id = f"p{p}-{n}"
            start = time.perf_counter()
            for _ in range(5):
                try:
                    await queue.enqueue("work", {"n": n}, job_id=job_id)
                except OutcomeUnknown:
                    repeated.append(job_id)  # it may have run: the same id makes it safe
                    continue
                except Exception as exc:
                    errors.append(f"enqueue {job_id}: {type(exc).__name__}: {exc}")
                else:
                    enqueued.add(job_id)
                break
            latencies.add(time.perf_counter() - start)
            n += 1
            await asyncio.sleep(0.005)

    kills: list[int] = []

    async def killer() -> None:
        while not load.expired and len(kills) < MAX_KILLS:
            await asyncio.sleep(KILL_INTERVAL)
            kills.append(int(await admin.execute("CLIENT", "KILL", "TYPE", "normal")))

    async def work(job: Job) -> None:
        processed.add(job.id)

    worker = Worker(queue, {"work": work}, concurrency=10, lease=5.0, handle_signals=False)
    runner = asyncio.create_task(worker.run())
    try:
        await asyncio.gather(
            killer(),
            *(writer(w) for w in range(WRITERS)),
            *(producer(p) for p in range(PRODUCERS)),
        )
        fig.record(kills=len(kills), connections_killed=sum(kills))
        await wait_until(
            lambda: all_finished(queue, len(enqueued)), timeout=DRAIN, what="jobs processed"
        )
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner, 15)

    keys = sorted(written)
    stored: dict[str, Any] = {}
    for i in range(0, len(keys), 500):
        stored.update(await cache.get_many(keys[i : i + 500]))
    lost_writes = [k for k in keys if stored.get(k) != written[k]]
    status = await statuses(queue)
    lost_jobs = sorted(i for i in enqueued if status.get(i) != "completed")
    await client.close()
    await admin.close()

    summary = latencies.summary()
    fig.record(
        writes=len(written), jobs=len(enqueued), errors=len(errors),
        enqueues_repeated=len(repeated),
        lost=len(lost_writes) + len(lost_jobs), lost_writes=len(lost_writes),
        lost_jobs=len(lost_jobs), unprocessed=len(enqueued - processed),
        p50_ms=summary["p50_ms"], p99_ms=summary["p99_ms"], max_ms=summary["max_ms"],
    )  # fmt: skip
    assert len(kills) >= 5 and sum(kills) > 0, f"the killer did not cut connections: {kills}"
    assert not errors, f"{len(errors)} calls failed despite reconnects, e.g. {errors[:3]}"
    assert not lost_writes, f"{len(lost_writes)} acknowledged cache writes lost: {lost_writes[:5]}"
    assert not lost_jobs, f"{len(lost_jobs)} acknowledged jobs not processed: {lost_jobs[:5]}"
