"""JobQueue.delete_job on every backend: a deleted job is gone from its list, its counts and its
record, and never runs; an active job is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redkeep.errors import JobError
from redkeep.queue import JobStatus
from tests.queue.conftest import running, wait_status, wait_until


async def test_delete_waiting_delayed_and_finished_jobs(make_queue: Any) -> None:
    q = await make_queue(max_attempts=1)
    waiting = await q.enqueue("x", "w")
    delayed = await q.enqueue("x", "d", delay=0.3)
    failing = await q.enqueue("boom")
    async with running(q, {"boom": lambda job: 1 / 0}):
        await wait_status(q, failing.id, "failed")
    assert await q.delete_job(waiting.id) is True
    assert await q.delete_job(delayed.id) is True
    assert await q.delete_job(failing.id) is True
    for job in (waiting, delayed, failing):
        assert await q.get_job(job.id) is None
        assert await q.delete_job(job.id) is False
    assert await q.counts() == {s.value: 0 for s in JobStatus}
    assert await q.list_jobs("failed") == []
    assert await q.delete_job("no-such-job") is False


async def test_a_deleted_delayed_job_never_runs(make_queue: Any) -> None:
    q = await make_queue()
    ran: list[str] = []
    gone = await q.enqueue("x", "gone", delay=0.2)
    kept = await q.enqueue("x", "kept", delay=0.4)
    assert await q.delete_job(gone.id) is True
    async with running(q, {"x": lambda job: ran.append(job.payload)}):
        await wait_status(q, kept.id, "completed")
        await asyncio.sleep(0.2)
    assert ran == ["kept"]


async def test_an_active_job_is_not_deleted(make_queue: Any) -> None:
    q = await make_queue()
    started = asyncio.Event()

    async def slow(job: Any) -> str:
        started.set()
        await asyncio.sleep(0.5)
        return "done"

    job = await q.enqueue("slow")
    async with running(q, {"slow": slow}):
        await asyncio.wait_for(started.wait(), 10)
        with pytest.raises(JobError, match="active: cancel it before deleting it"):
            await q.delete_job(job.id)
        await wait_status(q, job.id, "completed")
    assert await q.delete_job(job.id) is True


async def test_deleting_a_waiting_job_leaves_the_others_in_order(make_queue: Any) -> None:
    q = await make_queue()
    jobs = [await q.enqueue("x", i) for i in range(5)]
    assert await q.delete_job(jobs[2].id) is True
    assert [j.payload for j in await q.list_jobs("waiting")] == [0, 1, 3, 4]
    ran: list[int] = []
    async with running(q, {"x": lambda job: ran.append(job.payload)}, concurrency=1):
        await wait_until(lambda: _true(len(ran) == 4))
    assert ran == [0, 1, 3, 4]


async def _true(value: bool) -> bool:
    return value
