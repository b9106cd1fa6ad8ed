"""Scenario 2: Redis crash. redis-server (AOF, ``appendfsync always``) is SIGKILLed twice mid-load.

Four producer tasks enqueue jobs with known ids while the private server is killed and restarted
twice. Every enqueue that returned must be in Redis after the restarts and get processed; every
enqueue that did not return must have raised BackendUnavailable or BackendTimeout (a restarted
server still loading its AOF answers LOADING, which is BackendUnavailable too). Nothing may be
dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from redkeep.errors import (
    BackendTimeout,
    BackendUnavailable,
)
from redkeep.queue import Job, RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient
from tests.reliability.harness import Deadline, Figures, scale, wait_until
from tests.reliability.jobs import all_finished, statuses

pytestmark = pytest.mark.slow

JOBS = scale(1200, 5000)
PRODUCERS = 4
KILLS = 2
DOWN_SECONDS = 0.5
ENQUEUE_WINDOW = scale(40.0, 120.0)
DRAIN = scale(30.0, 90.0)


@pytest.mark.timeout(ENQUEUE_WINDOW + DRAIN + 60)
async def test_redis_sigkill_during_enqueue_drops_nothing_silently(
    redis_server_factory: Callable[..., Any], figures: Callable[[str, str], Figures]
) -> None:
    fig = figures("redis_crash", "Redis SIGKILL x2 during enqueue (AOF appendfsync always)")
    fig.bounds(
        jobs=JOBS, producers=PRODUCERS, kills=KILLS, down_s=DOWN_SECONDS,
        enqueue_window_s=ENQUEUE_WINDOW,
    )  # fmt: skip
    server = redis_server_factory(appendonly=True, appendfsync="always")
    client = MuxClient(server.url, command_timeout=1.0, connect_timeout=1.0, retry_max_delay=0.2)
    fig.meta(redis_version=(await client.info("server"))["redis_version"])
    queue = RedisJobQueue(client, "crash", key_prefix="rel", max_attempts=3)

    returned: set[str] = set()
    failed: dict[str, str] = {}
    unexpected: list[str] = []
    progress = 0
    window = Deadline(ENQUEUE_WINDOW)

    async def produce(p: int) -> None:
        nonlocal progress
        for i in range(JOBS // PRODUCERS):
            if window.expired:
                return
            job_id = f"p{p}-{i}"
            try:
                job = await queue.enqueue("work", {"p": p, "i": i}, job_id=job_id)
            except (BackendUnavailable, BackendTimeout) as exc:
                failed[job_id] = type(exc).__name__
                await asyncio.sleep(0.01)
            except Exception as exc:  # anything else is a bug: collected and asserted below
                unexpected.append(f"{job_id}: {type(exc).__name__}: {exc}")
            else:
                assert job.id == job_id
                returned.add(job_id)
            progress += 1

    async def crash() -> None:
        for k in range(KILLS):
            target = JOBS * (k + 1) // (KILLS + 1)
            while progress < target and not window.expired:
                await asyncio.sleep(0.005)
            server.kill()
            await asyncio.sleep(DOWN_SECONDS)
            await asyncio.to_thread(server.start)

    producers = [asyncio.create_task(produce(p)) for p in range(PRODUCERS)]
    crasher = asyncio.create_task(crash())
    await asyncio.gather(*producers, crasher)
    attempted = len(returned) + len(failed) + len(unexpected)
    fig.record(
        jobs=attempted, kills=KILLS, returned=len(returned), errors=len(failed),
        error_types=sorted(set(failed.values())), unexpected=len(unexpected),
        enqueue_s=round(window.elapsed, 1),
    )  # fmt: skip
    assert not unexpected, f"enqueue raised unexpected errors: {unexpected[:5]}"
    assert attempted == JOBS // PRODUCERS * PRODUCERS, "the enqueue window ran out"

    present = await statuses(queue)
    missing = sorted(returned - set(present))
    fig.record(
        lost=len(missing),
        written_despite_error=sum(1 for i in failed if i in present),
        stored=len(present),
    )
    assert not missing, f"{len(missing)} acknowledged enqueues missing after restart: {missing[:5]}"

    processed: set[str] = set()

    async def work(job: Job) -> None:
        processed.add(job.id)

    worker = Worker(queue, {"work": work}, concurrency=20, lease=5.0, handle_signals=False)
    runner = asyncio.create_task(worker.run())
    try:
        await wait_until(
            lambda: all_finished(queue, len(present)), timeout=DRAIN, what="all jobs processed"
        )
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner, 15)
        await client.close()
    unprocessed = sorted(returned - processed)
    fig.record(processed=len(processed), unprocessed=len(unprocessed))
    assert not unprocessed, f"{len(unprocessed)} acknowledged jobs never ran: {unprocessed[:5]}"
