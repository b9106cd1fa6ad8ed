"""Flow control contract (pause and resume), run on every backend."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redkeep.queue import Job, JobStatus
from redkeep.queue import worker as worker_module
from redkeep.queue.protocol import StepRequest
from tests.queue.conftest import running, wait_status, wait_until


async def test_pause_stops_claims_and_resume_restarts_them(make_queue: Any) -> None:
    q = await make_queue()
    assert await q.is_paused() is False
    await q.pause()
    await q.pause()  # idempotent
    assert await q.is_paused() is True
    ran: list[Any] = []
    async with running(q, {"x": lambda job: ran.append(job.payload)}, concurrency=4):
        jobs = [await q.enqueue("x", i) for i in range(5)]
        await asyncio.sleep(0.5)
        assert ran == []
        assert all(j.status == JobStatus.WAITING for j in jobs)  # no hand-off while paused
        assert (await q.counts())["waiting"] == 5
        await q.resume()
        assert await q.is_paused() is False
        await wait_until(lambda: _true(len(ran) == 5), timeout=5)
    assert sorted(ran) == list(range(5))


async def test_paused_step_claims_nothing_and_reports_no_more(make_queue: Any) -> None:
    q = await make_queue()
    await q.enqueue("x")
    await q.pause()
    res = await q.step(StepRequest("w1", "r1", claim=5, idle=1.5))
    assert res.jobs == [] and res.more is False
    assert (await q.counts())["waiting"] == 1
    await q.resume()
    res = await q.step(StepRequest("w1", "r2", claim=5))
    assert len(res.jobs) == 1


async def test_running_jobs_finish_and_upkeep_goes_on_while_paused(make_queue: Any) -> None:
    q = await make_queue()
    gate = asyncio.Event()

    async def slow(job: Job) -> str:
        await gate.wait()
        return "done"

    first = await q.enqueue("slow")
    async with running(q, {"slow": slow}, concurrency=2, prefetch=0):
        await wait_status(q, first.id, "active")
        await q.pause()
        delayed = await q.enqueue("slow", delay=0.2)
        gate.set()
        await wait_status(q, first.id, "completed")
        await wait_status(q, delayed.id, "waiting", timeout=5)  # promoted, not claimed
        await asyncio.sleep(0.3)
        assert (await q.get_job(delayed.id)).status == JobStatus.WAITING  # type: ignore[union-attr]
        await q.resume()
        await wait_status(q, delayed.id, "completed")


async def test_resume_wakes_idle_workers_at_once(
    make_queue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Idle workers wait up to MAX_BLOCK, here 60 s (29 s: lease - renew interval), before they
    # step again: without the resume's wake-up the job would start only when that wait ends,
    # well after the 1 s bound, which leaves a loaded machine room.
    monkeypatch.setattr(worker_module, "MAX_BLOCK", 60.0)
    q = await make_queue()
    ran: list[float] = []
    loop = asyncio.get_running_loop()
    async with running(q, {"x": lambda job: ran.append(loop.time())}, concurrency=2):
        await asyncio.sleep(0.2)  # the worker is idle, blocked waiting for jobs
        await q.pause()
        await q.enqueue("x")  # wakes the worker once: it claims nothing and blocks again
        await asyncio.sleep(0.1)
        assert ran == []
        resumed = loop.time()
        await q.resume()
        await wait_until(lambda: bool(ran), timeout=20, what="the resumed job to run")
    assert ran[0] - resumed < 1.0


async def _true(value: bool) -> bool:
    return value
