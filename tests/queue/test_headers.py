"""Job headers (string metadata stored with a job's immutable data), on every backend."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redkeep.queue import Backoff, InvalidJob, Job, JobSpec, JobStatus
from redkeep.queue.job import MAX_HEADER_NAME, MAX_HEADER_VALUE, MAX_HEADERS
from redkeep.queue.protocol import StepRequest
from tests.queue.conftest import running, wait_status

TRACE = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


async def test_headers_are_stored_and_read_back(make_queue: Any) -> None:
    q = await make_queue()
    job = await q.enqueue("x", {"a": 1}, headers={**TRACE, "tenant": "ü-42"})
    plain = await q.enqueue("x", {"a": 2})
    assert job.headers == {**TRACE, "tenant": "ü-42"}
    got = await q.get_job(job.id)
    assert got is not None and got.headers == {**TRACE, "tenant": "ü-42"}
    assert got.payload == {"a": 1}
    bare = await q.get_job(plain.id)
    assert bare is not None and bare.headers == {} and plain.headers == {}
    listed = {j.id: j.headers for j in await q.list_jobs("waiting")}
    assert listed == {job.id: {**TRACE, "tenant": "ü-42"}, plain.id: {}}


async def test_headers_and_backoff_are_both_kept(make_queue: Any) -> None:
    q = await make_queue()
    backoff = Backoff(2.0, 30.0, "fixed", jitter=False)
    job = await q.enqueue("x", headers=TRACE, backoff=backoff, timeout=4)
    got = await q.get_job(job.id)
    assert got is not None
    assert (got.headers, got.backoff, got.timeout) == (TRACE, backoff, 4.0)


async def test_a_claimed_job_carries_its_headers(make_queue: Any) -> None:
    q = await make_queue()
    job = await q.enqueue("x", headers=TRACE)
    res = await q.step(StepRequest("w1", "r1", [], 1, 10.0))
    assert [(j.id, j.headers) for j in res.jobs] == [(job.id, TRACE)]


async def test_the_handler_sees_headers_of_claimed_and_handed_over_jobs(make_queue: Any) -> None:
    """The first job waits before the worker starts (claimed by a step); the second is
    enqueued while the worker is idle (handed straight to it where the backend can)."""
    q = await make_queue()
    seen: dict[str, dict[str, str]] = {}

    async def rec(job: Job) -> None:
        seen[job.id] = dict(job.headers)

    first = await q.enqueue("rec", headers={"n": "1"})
    async with running(q, {"rec": rec}, concurrency=2):
        await wait_status(q, first.id, "completed")
        await asyncio.sleep(0.2)  # the worker is idle now
        second = await q.enqueue("rec", headers={"n": "2"})
        await wait_status(q, second.id, "completed")
    assert seen == {first.id: {"n": "1"}, second.id: {"n": "2"}}


async def test_enqueue_many_keeps_each_jobs_headers(make_queue: Any) -> None:
    q = await make_queue()
    jobs = await q.enqueue_many(
        [JobSpec("x", i, headers={"i": str(i)}) if i % 2 else JobSpec("x", i) for i in range(6)]
    )
    assert [j.headers for j in jobs] == [{"i": str(i)} if i % 2 else {} for i in range(6)]
    stored = [await q.get_job(j.id) for j in jobs]
    assert [j.headers for j in stored if j is not None] == [j.headers for j in jobs]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({f"h{i}": "v" for i in range(MAX_HEADERS + 1)}, f"at most {MAX_HEADERS} headers"),
        ({"": "v"}, "header name ''"),
        ({"x" * (MAX_HEADER_NAME + 1): "v"}, "header name"),
        ({1: "v"}, "header name '1'"),
        ({"n": 1}, "header 'n' must be a str"),
        ({"n": "v" * (MAX_HEADER_VALUE + 1)}, f"at most {MAX_HEADER_VALUE} characters"),
        (["traceparent"], "headers must be a mapping"),
    ],
)
async def test_bad_headers_are_refused_and_nothing_is_written(
    make_queue: Any, headers: Any, message: str
) -> None:
    q = await make_queue()
    with pytest.raises(InvalidJob, match=message):
        await q.enqueue("x", headers=headers)
    with pytest.raises(InvalidJob, match=message):
        await q.enqueue_many([JobSpec("x"), JobSpec("x", headers=headers)])
    assert sum((await q.counts()).values()) == 0


async def test_dump_and_restore_keep_headers(make_queue: Any) -> None:
    source = await make_queue()
    target = await make_queue()
    job = await source.enqueue("x", 1, headers=TRACE)
    dumped = [j async for j in source.dump_jobs()]
    assert [j.headers for j in dumped] == [TRACE]
    assert await target.restore_job(dumped[0]) is True
    restored = await target.get_job(job.id)
    assert restored is not None
    assert (restored.headers, restored.status) == (TRACE, JobStatus.WAITING)
