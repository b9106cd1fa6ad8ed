"""Bulk operations: retry_failed and cancel_waiting (redkeep.queue.bulk), on every backend."""

from __future__ import annotations

import time
from typing import Any

import pytest

from redkeep.queue import InvalidJob, Job, JobStatus, RedisJobQueue
from redkeep.queue import bulk as bulk_module
from redkeep.queue.protocol import StepRequest
from tests.queue.conftest import running, wait_until
from tests.support.clients import open_client


async def _failed(q: Any, n: int, name: str = "h", start: int = 0) -> list[str]:
    """``n`` failed jobs of handler ``name`` (restored as failed: quick on every backend)."""
    now = time.time()
    ids = []
    for i in range(start, start + n):
        job = Job(
            id=f"{name}-{i}", name=name, queue=q.name, payload=i, status=JobStatus.FAILED,
            attempts=3, max_attempts=3, created_at=now, finished_at=now + i / 1000,
        )  # fmt: skip
        assert await q.restore_job(job)
        ids.append(job.id)
    return ids


async def test_retry_failed_moves_every_failed_job(make_queue: Any) -> None:
    q = await make_queue()
    ids = await _failed(q, 7)
    assert await q.retry_failed() == 7
    counts = await q.counts()
    assert (counts["failed"], counts["waiting"]) == (0, 7)
    for job_id in ids:
        job = await q.get_job(job_id)
        assert job is not None and job.status == JobStatus.WAITING and job.attempts == 0
    assert await q.retry_failed() == 0


async def test_retry_failed_by_name_and_limit(make_queue: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(bulk_module, "BULK_BATCH", 4)  # several batches, names interleaved
    q = await make_queue()
    for i in range(5):
        await _failed(q, 1, "a", i)
        await _failed(q, 2, "b", 2 * i)
    assert await q.retry_failed(name="b", limit=3) == 3
    assert await q.retry_failed(name="a") == 5
    assert await q.retry_failed(name="missing") == 0
    waiting = await q.list_jobs("waiting", limit=100)
    assert sorted(j.name for j in waiting) == ["a"] * 5 + ["b"] * 3
    # the oldest failures first
    assert {j.id for j in waiting if j.name == "b"} == {"b-0", "b-1", "b-2"}
    assert (await q.counts())["failed"] == 7


async def test_retried_jobs_run(make_queue: Any) -> None:
    q = await make_queue()
    await _failed(q, 3)
    assert await q.retry_failed() == 3
    async with running(q, {"h": lambda job: job.payload}, concurrency=2):

        async def done() -> bool:
            return (await q.counts())["completed"] == 3

        await wait_until(done)


async def test_cancel_waiting_cancels_waiting_and_delayed_not_active(make_queue: Any) -> None:
    q = await make_queue()
    waiting = [await q.enqueue("a", i) for i in range(3)]
    delayed = [await q.enqueue("b", i, delay=3600) for i in range(2)]
    other = await q.enqueue("c", "x", delay=3600)
    assert await q.cancel_waiting(name="b") == 2
    assert await q.cancel_waiting(limit=2) == 2
    assert await q.cancel_waiting() == 2
    for job in [*waiting, *delayed, other]:
        got = await q.get_job(job.id)
        assert got is not None and got.status == JobStatus.CANCELLED
    counts = await q.counts()
    assert (counts["waiting"], counts["delayed"], counts["cancelled"]) == (0, 0, 6)


async def test_cancel_waiting_leaves_active_jobs(make_queue: Any) -> None:
    q = await make_queue()
    active = await q.enqueue("h", "first")
    claimed = await q.step(StepRequest("w1", "r1", [], 1, 30.0))
    assert [j.id for j in claimed.jobs] == [active.id]
    queued = [await q.enqueue("h", i) for i in range(3)]
    assert await q.cancel_waiting() == 3
    got = await q.get_job(active.id)
    assert got is not None and got.status == JobStatus.ACTIVE
    for job in queued:
        got = await q.get_job(job.id)
        assert got is not None and got.status == JobStatus.CANCELLED


async def test_progress_is_reported_per_batch(make_queue: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(bulk_module, "BULK_BATCH", 3)
    q = await make_queue()
    await _failed(q, 8)
    seen: list[tuple[int, int]] = []
    assert await q.retry_failed(progress=lambda done, total: seen.append((done, total))) == 8
    assert seen[0] == (0, 8) and seen[-1] == (8, 8)
    assert [d for d, _ in seen] == [0, 3, 6, 8]


@pytest.mark.parametrize(("name", "limit"), [("", None), (None, 0), (None, -1), (None, True)])
async def test_bad_bulk_arguments(make_queue: Any, name: Any, limit: Any) -> None:
    q = await make_queue()
    await _failed(q, 1)
    with pytest.raises(InvalidJob):
        await q.retry_failed(name=name, limit=limit)
    with pytest.raises(InvalidJob):
        await q.cancel_waiting(name=name, limit=limit)
    assert (await q.counts())["failed"] == 1


# -- Redis only -----------------------------------------------------------------------------------

_SEED = """
local now, start, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = start, start + n - 1 do
  local id = 'j' .. i
  local name = (i % 10 == 0) and 'b' or 'a'
  redis.call('HSET', KEYS[1], id, 'failed|1|1|0|1|' .. now .. '|' .. now .. '|' .. now .. '|'
    .. now .. '|w')
  redis.call('HSET', KEYS[2], id, '["' .. id .. '","' .. name .. '",null]\\nnull')
  redis.call('ZADD', KEYS[3], now + i, id)
end
return n
"""


@pytest.mark.parametrize("backend", ["mux"])
async def test_retry_100k_failed_jobs_in_batches(
    request: pytest.FixtureRequest, prefix: str, backend: str, monkeypatch: Any
) -> None:
    client = open_client(request, backend)
    try:
        q = RedisJobQueue(client, "big", key_prefix=prefix)
        await q.register()
        now = int(time.time() * 1000)
        total = 100_000
        for start in range(0, total, 10_000):
            await client.execute(
                "EVAL", _SEED, 3, q.keys.state, q.keys.data, q.keys.failed, now, start, 10_000
            )
        assert (await q.counts())["failed"] == total
        calls: list[tuple[int, int]] = []
        real = q._bulk

        async def spy(*args: Any) -> tuple[int, int]:
            result = await real(*args)
            calls.append((args[4], result[1]))  # (scan asked, looked at)
            return result

        monkeypatch.setattr(q, "_bulk", spy)
        assert await q.retry_failed(name="a") == 90_000
        assert max(scan for scan, _ in calls) == bulk_module.BULK_BATCH
        assert len(calls) >= total // bulk_module.BULK_BATCH
        counts = await q.counts()
        assert (counts["waiting"], counts["failed"]) == (90_000, 10_000)
        assert await q.retry_failed(limit=1234) == 1234
        assert await q.cancel_waiting(name="b") == 1234
        assert await q.cancel_waiting() == 90_000
        counts = await q.counts()
        assert (counts["waiting"], counts["failed"], counts["cancelled"]) == (0, 8766, 91_234)
    finally:
        await client.close()


@pytest.mark.parametrize("backend", ["mux"])
async def test_a_batch_resent_after_a_lost_reply_is_applied_once(
    request: pytest.FixtureRequest, prefix: str, backend: str
) -> None:
    client = open_client(request, backend)
    try:
        q = RedisJobQueue(client, "resend", key_prefix=prefix)
        await _failed(q, 5)
        first = await q._bulk("retry", JobStatus.FAILED, None, 0, 3, 3, "req-1")
        again = await q._bulk("retry", JobStatus.FAILED, None, 0, 3, 3, "req-1")
        assert first == again == (3, 3)
        counts = await q.counts()
        assert (counts["waiting"], counts["failed"]) == (3, 2)
    finally:
        await client.close()
