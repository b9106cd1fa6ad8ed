"""Job events, wait(), progress and per-minute counters: the contract on every backend
(memory, Redis over mux and redis-py, Cluster, Sentinel), plus Redis-only bounds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from redkeep.errors import InvalidJob, JobNotFound, LeaseLost
from redkeep.queue import JobSpec, JobStatus, RetentionPolicy, progress, progress_sync
from redkeep.queue.protocol import Outcome, StepRequest
from tests.queue.conftest import running, wait_status, wait_until


async def _collect(q: Any, since: str | None, n: int, timeout: float = 10.0) -> list[Any]:
    out: list[Any] = []

    async def take() -> None:
        async for event in q.events(since):
            out.append(event)
            if len(out) >= n:
                return

    await asyncio.wait_for(take(), timeout)
    return out


async def test_a_jobs_full_life_appears_in_order(make_queue: Any) -> None:
    q = await make_queue()
    done = await q.enqueue("ok", 1)
    retried = await q.enqueue("flaky", 2, max_attempts=2, backoff=0)
    calls: list[int] = []

    def flaky(job: Any) -> str:
        calls.append(job.attempts)
        if job.attempts == 1:
            raise RuntimeError("first attempt fails")
        return "second"

    async def ok(job: Any) -> str:
        await progress(40)
        return "fine"

    async with running(q, {"ok": ok, "flaky": flaky}, concurrency=2):
        await q.wait(done.id, timeout=10)
        await q.wait(retried.id, timeout=10)
    life = [(e.event, e.data) for e in await q.job_events(done.id)]
    assert life == [
        ("enqueued", {}),
        ("active", {"from": "waiting"}),
        ("progress", {"progress": 40}),
        ("completed", {"from": "active"}),
    ]
    names = [e.event for e in await q.job_events(retried.id)]
    assert names == ["enqueued", "active", "failed", "waiting", "active", "completed"]
    failed = [e for e in await q.job_events(retried.id) if e.event == "failed"]
    assert failed[0].data == {"from": "active", "will_retry": True}
    everything = await q.read_events(limit=1000)
    ids = [e.id for e in everything]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))) and len(set(ids)) == len(
        ids
    )
    assert all(abs(e.at - time.time()) < 60 for e in everything)


async def test_delayed_cancelled_and_removed_events(make_queue: Any) -> None:
    q = await make_queue()
    later = await q.enqueue("x", delay=3600)
    assert await q.cancel(later.id)
    assert await q.purge("cancelled") == 1
    assert [(e.event, e.data) for e in await q.job_events(later.id)] == [
        ("enqueued", {}),
        ("delayed", {}),
        ("cancelled", {"from": "delayed"}),
        ("removed", {"from": "cancelled"}),
    ]


async def test_resume_from_a_saved_id_loses_and_repeats_nothing(make_queue: Any) -> None:
    q = await make_queue()
    await q.enqueue_many([JobSpec("x", i) for i in range(5)])
    first = await q.read_events(limit=3)
    assert len(first) == 3
    follower = asyncio.ensure_future(_collect(q, first[-1].id, 2 + 4))
    await asyncio.sleep(0.05)
    await q.enqueue_many([JobSpec("x", i) for i in range(4)])
    rest = await follower
    everything = await q.read_events(limit=100)
    assert [e.id for e in first + rest] == [e.id for e in everything]
    live = asyncio.ensure_future(_collect(q, None, 1))
    await asyncio.sleep(0.05)
    newest = await q.enqueue("x", "new")
    assert [(e.job_id, e.event) for e in await live] == [(newest.id, "enqueued")]


async def test_wait_wakes_within_50ms_of_completion(make_queue: Any) -> None:
    q = await make_queue()
    finished_at: dict[str, float] = {}

    async def handler(job: Any) -> str:
        await asyncio.sleep(0.3)
        finished_at[job.id] = time.monotonic()
        return "done"

    woke_at: dict[str, float] = {}

    async def wait(job_id: str) -> Any:
        job = await q.wait(job_id, timeout=10)
        woke_at[job_id] = time.time()  # the clock of finished_at (Redis TIME, same host)
        return job

    async with running(q, {"h": handler}, concurrency=4):
        jobs = [await q.enqueue("h", i) for i in range(3)]
        results = await asyncio.gather(*(wait(j.id) for j in jobs))
        woke = time.monotonic()
    assert [r.status for r in results] == [JobStatus.COMPLETED] * 3
    assert all(r.result == "done" for r in results)
    # the last finished handler returned at most 50 ms (plus the outcome's report) before
    assert woke - max(finished_at.values()) <= 0.05 + 0.05
    # each waiter woke at most 50 ms after its job was recorded as finished (ms precision)
    lags = [woke_at[r.id] - r.finished_at for r in results]
    assert all(-0.002 <= lag <= 0.05 for lag in lags), lags


async def test_wait_timeout_unknown_job_and_failed_job(make_queue: Any) -> None:
    q = await make_queue()
    job = await q.enqueue("never-handled-here", 1)
    with pytest.raises(TimeoutError):
        await q.wait(job.id, timeout=0.2)
    with pytest.raises(JobNotFound):
        await q.wait("no-such-job", timeout=1)
    with pytest.raises(InvalidJob):
        await q.wait(job.id, timeout=-1)
    assert await q.cancel(job.id)
    assert (await q.wait(job.id, timeout=1)).status == JobStatus.CANCELLED

    def boom(job: Any) -> None:
        raise ValueError("bad input")

    bad = await q.enqueue("boom", 1, max_attempts=1)
    async with running(q, {"boom": boom}):
        failed = await q.wait(bad.id, timeout=10)
    assert failed.status == JobStatus.FAILED and failed.error is not None
    assert failed.error.type == "ValueError" and "bad input" in failed.error.message


async def test_many_waits_share_one_listener(make_queue: Any) -> None:
    q = await make_queue()
    jobs = await q.enqueue_many([JobSpec("h", i) for i in range(200)])
    waits = [asyncio.ensure_future(q.wait(j.id, timeout=20)) for j in jobs]
    await asyncio.sleep(0.2)
    if make_queue.backend != "memory":
        from redkeep.queue.stream import _LISTENERS

        assert len(_LISTENERS[q.client]) == 1  # one reader for 200 waits
    async with running(q, {"h": lambda job: job.payload}, concurrency=20):
        done = await asyncio.gather(*waits)
    assert sorted(j.result for j in done) == list(range(200))


async def test_wait_works_with_events_off(make_queue: Any) -> None:
    q = await make_queue()
    await q.set_events(False)
    assert (await q.events_config()).enabled is False
    job = await q.enqueue("h", 1)
    other = await q.enqueue("h", 2)
    waiter = asyncio.ensure_future(q.wait(job.id, timeout=10))
    await asyncio.sleep(0.1)
    async with running(q, {"h": lambda job: "r"}):
        assert (await waiter).result == "r"
        await wait_status(q, other.id, "completed")
    # only the finish of the awaited job was recorded
    assert [(e.job_id, e.event) for e in await q.read_events(limit=100)] == [(job.id, "completed")]
    await q.set_events(True, max_events=500)
    assert await q.events_config() == type(await q.events_config())(True, 500)


async def test_progress_from_async_and_sync_handlers(make_queue: Any) -> None:
    q = await make_queue()
    a = await q.enqueue("a", 1)
    s = await q.enqueue("s", 2)
    seen: list[Any] = []

    async def handler_a(job: Any) -> None:
        await progress(10)
        await progress({"step": "two", "of": 3})
        seen.append((await q.get_job(job.id)).progress)

    def handler_s(job: Any) -> None:
        progress_sync(99.5)
        with pytest.raises(InvalidJob):
            progress_sync(101)
        with pytest.raises(InvalidJob):
            progress_sync("x" * 5000)

    async with running(q, {"a": handler_a, "s": handler_s}):
        ra, rs = await q.wait(a.id, timeout=10), await q.wait(s.id, timeout=10)
    assert rs.status == JobStatus.COMPLETED, rs.error
    assert seen == [{"step": "two", "of": 3}] and ra.progress == {"step": "two", "of": 3}
    assert rs.progress == 99.5
    events = [e.data.get("progress") for e in await q.job_events(a.id) if e.event == "progress"]
    assert events == [10, {"step": "two", "of": 3}]
    with pytest.raises(Exception, match="progress can only be reported"):
        await progress(5)


async def test_a_stale_claim_cannot_write_progress(make_queue: Any) -> None:
    q = await make_queue()
    job = await q.enqueue("x", 1)
    first = (await q.step(StepRequest("w1", "r1", claim=1, lease=0.05))).jobs[0]
    await q.report_progress(job.id, first.token, 5)
    await asyncio.sleep(0.1)
    second = (await q.step(StepRequest("w2", "r2", claim=1, lease=30))).jobs[0]
    assert second.token > first.token
    with pytest.raises(LeaseLost):
        await q.report_progress(job.id, first.token, 50)
    await q.report_progress(job.id, second.token, 60)
    assert (await q.get_job(job.id)).progress == 60


async def test_throughput_counts_completed_and_failed_per_minute(make_queue: Any) -> None:
    q = await make_queue()
    await q.enqueue_many([JobSpec("x", i) for i in range(5)])
    claimed = (await q.step(StepRequest("w", "r1", claim=5))).jobs
    outcomes = [Outcome(j.id, j.token, "done", "1") for j in claimed[:3]]
    outcomes += [Outcome(j.id, j.token, "fail", '["E","m",""]') for j in claimed[3:]]
    await q.step(StepRequest("w", "r2", outcomes))
    points = await q.throughput(15)
    assert len(points) == 15 and points[-1].minute <= time.time() < points[-1].minute + 61
    assert (points[-1].completed, points[-1].failed) == (3, 2)
    assert sum(p.completed + p.failed for p in points[:-1]) == 0
    with pytest.raises(InvalidJob):
        await q.throughput(61)


async def test_event_stream_stays_bounded(make_queue: Any) -> None:
    if make_queue.backend not in ("memory", "mux"):
        pytest.skip("bound checked on memory and one RESP transport")
    q = await make_queue()
    await q.set_events(True, max_events=1000)
    for _ in range(2):
        await q.enqueue_many([JobSpec("x", None) for _i in range(5000)])
    if make_queue.backend == "memory":
        assert len(q._log.entries) == 1000
    else:
        length = await q.client.execute("XLEN", q.keys.events)
        assert 1000 <= length <= 1100  # MAXLEN ~ trims whole stream nodes (100 entries)


async def test_a_deleted_job_leaves_a_removed_event(make_queue: Any) -> None:
    q = await make_queue()
    job = await q.enqueue("x")
    assert await q.delete_job(job.id)
    assert [(e.event, e.data) for e in await q.job_events(job.id)] == [
        ("enqueued", {}),
        ("removed", {"from": "waiting"}),
    ]


async def test_retention_leaves_a_removed_event(make_queue: Any) -> None:
    q = await make_queue(retention=RetentionPolicy(0, 0, 0, 0))  # keep no finished job
    job = await q.enqueue("ok")
    async with running(q, {"ok": lambda job: 1}):
        await wait_until(lambda: _gone(q, job.id))
    assert [(e.event, e.data) for e in await q.job_events(job.id)] == [
        ("enqueued", {}),
        ("active", {"from": "waiting"}),
        ("completed", {"from": "active"}),
        ("removed", {"from": "completed"}),
    ]


async def _gone(q: Any, job_id: str) -> bool:
    return await q.get_job(job_id) is None
