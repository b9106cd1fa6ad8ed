"""JobQueue.delete_job on every backend: a deleted job is gone from its list, its counts and every
record, and never runs; an active job is refused; a re-sent delete acts once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redkeep.errors import JobError
from redkeep.queue import JobStatus, MemoryJobQueue, RedisJobQueue, scripts
from redkeep.queue.job import STATUSES
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


async def test_a_deleted_job_leaves_no_record(make_queue: Any) -> None:
    q = await make_queue(max_attempts=1)
    done = await q.enqueue("ok", "d")
    failed = await q.enqueue("boom")
    async with running(q, {"ok": lambda job: "result", "boom": lambda job: 1 / 0}):
        await wait_status(q, done.id, "completed")
        await wait_status(q, failed.id, "failed")
    assert await q.delete_job(done.id) and await q.delete_job(failed.id)
    if isinstance(q, MemoryJobQueue):
        assert q.size_bytes == 0  # its payload, result and error are no longer counted
        return
    assert isinstance(q, RedisJobQueue)
    k = q.keys
    for key in (k.state, k.data, k.results, k.errors):
        assert await q.client.hgetall(key) == {}, key
    for status in STATUSES:
        assert await q.client.zrange(k.status_key(status), 0, -1) == [], status


async def test_a_resent_delete_answers_what_the_first_did(make_queue: Any) -> None:
    # The same script call twice with one request id, as a transport re-sends it after a lost
    # reply: the second answers from the request memo (a job since re-added is not deleted).
    q = await make_queue()
    if not isinstance(q, RedisJobQueue):
        pytest.skip("the memory queue has no transport to re-send a call")
    job = await q.enqueue("x", job_id="same-id")
    keys = q.keys.names(scripts.DELETE.keys)
    assert await q.client.evalsha(scripts.DELETE, keys, ["req-1", job.id]) == "waiting"
    await q.enqueue("x", job_id="same-id")
    assert await q.client.evalsha(scripts.DELETE, keys, ["req-1", job.id]) == "waiting"
    assert (await q.counts())["waiting"] == 1
    assert await q.client.evalsha(scripts.DELETE, keys, ["req-2", job.id]) == "waiting"
    assert await q.client.evalsha(scripts.DELETE, keys, ["req-2", job.id]) == "waiting"
    assert await q.client.evalsha(scripts.DELETE, keys, ["req-3", job.id]) is None
    assert await q.get_job(job.id) is None


async def test_a_damaged_record_can_be_deleted(make_queue: Any) -> None:
    q = await make_queue()
    if not isinstance(q, RedisJobQueue):
        pytest.skip("the memory queue keeps no stored records")
    job = await q.enqueue("x", job_id="damaged")
    await q.client.hset(q.keys.state, {job.id: "not a state record"})
    assert await q.delete_job(job.id) is True
    assert await q.client.zrange(q.keys.waiting, 0, -1) == []
    assert await q.client.hgetall(q.keys.data) == {}
