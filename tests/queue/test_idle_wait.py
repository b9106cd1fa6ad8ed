"""An idle worker waits long (seconds between steps: few Redis commands) yet nothing it looks
after is late: its step says when the next thing is due (a delayed job, a lease expiry), and
whatever makes something due sooner wakes it (an enqueue with a delay, a retry reported by
another worker, a schedule written). A stop interrupts the wait at once. Memory and every RESP
transport; the bounds are today's (a step at least once a second), the waits are 10 s."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redkeep.queue import Job, JobStatus, Worker
from redkeep.queue.protocol import Outcome, StepRequest
from tests.queue.conftest import running, wait_status

ON_TIME = 1.0  # the bound a worker stepping once a second met: late by less than this


def _no_op(job: Job) -> None:
    return None


async def test_an_idle_worker_steps_only_when_something_is_due(make_queue: Any) -> None:
    q = await make_queue()
    steps = 0
    step = q.step

    async def counted(request: StepRequest) -> Any:
        nonlocal steps
        steps += 1
        return await step(request)

    q.step = counted  # type: ignore[method-assign]
    async with running(q, {"x": _no_op}):
        await asyncio.sleep(2.5)  # a worker stepping once a second would have stepped 3 times
    assert steps <= 3  # the first step, the last one at stop, at most one more


async def test_a_delayed_job_enqueued_while_a_worker_waits_idle_runs_on_time(
    make_queue: Any,
) -> None:
    q = await make_queue()
    async with running(q, {"x": _no_op}):
        await asyncio.sleep(0.3)  # the worker's idle wait has begun
        job = await q.enqueue("x", delay=1.0)
        done = await wait_status(q, job.id, "completed", timeout=15)
    assert job.run_at - 0.002 <= done.started_at < job.run_at + ON_TIME


async def test_a_retry_reported_by_a_busy_worker_runs_on_time_on_an_idle_one(
    make_queue: Any,
) -> None:
    q = await make_queue()
    job = await q.enqueue("x")
    claimed = (await q.step(StepRequest("busy", "r1", [], 1, 30.0))).jobs[0]
    async with running(q, {"x": _no_op}):
        await asyncio.sleep(0.5)  # idle: nothing due before the busy worker's lease ends
        retry = Outcome(job.id, claimed.token, "retry", '["E","failed",""]', 1.0)
        reported = time.time()
        await q.step(StepRequest("busy", "r2", [retry], 0, 30.0))  # full: claims nothing
        done = await wait_status(q, job.id, "completed", timeout=15)
    assert done.attempts == 2
    assert reported + 1.0 - 0.05 <= done.started_at < reported + 1.0 + ON_TIME


async def test_an_expired_lease_is_recovered_on_time_by_an_idle_worker(make_queue: Any) -> None:
    q = await make_queue()
    job = await q.enqueue("x")
    claimed_at = time.time()
    await q.step(StepRequest("dead", "r1", [], 1, 1.5))  # a worker that died with the job
    async with running(q, {"x": _no_op}):  # lease 30 s: waits up to 10 s when idle
        done = await wait_status(q, job.id, "completed", timeout=15)
    assert done.attempts == 2 and done.worker_id != "dead"
    assert done.started_at < claimed_at + 1.5 + ON_TIME


async def test_a_schedule_written_while_a_worker_waits_idle_fires_on_time(
    make_queue: Any,
) -> None:
    q = await make_queue()
    async with running(q, {"x": _no_op}):
        await asyncio.sleep(0.6)  # past the first scheduling pass: the next is seconds away
        tick = time.time() + 0.8
        s = await q.schedule("soon", "x", every=3600, start_at=tick)
        assert s.next_run_at is not None and abs(s.next_run_at - tick) < 0.002

        async def fired() -> Any:
            jobs = [j async for j in q.dump_jobs()]
            return jobs and jobs[0].status == JobStatus.COMPLETED and jobs[0]

        loop = asyncio.get_running_loop()
        end = loop.time() + 15
        while not (done := await fired()) and loop.time() < end:
            await asyncio.sleep(0.05)
    assert done, "the schedule's first tick did not run within 15 s"
    assert tick - 0.002 <= done.started_at < tick + ON_TIME


async def test_graceful_stop_of_an_idle_worker_is_prompt(make_queue: Any) -> None:
    q = await make_queue()
    worker = Worker(q, {"x": _no_op}, handle_signals=False)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.5)  # in its idle wait (up to 10 s)
    stopped = time.monotonic()
    worker.stop()
    await asyncio.wait_for(task, 30)
    assert time.monotonic() - stopped < ON_TIME
