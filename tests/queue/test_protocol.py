"""The worker protocol (redkeep.queue.protocol.WorkerQueue), checked on every backend: memory,
and Redis over every transport (mux, redis-py, Cluster, Sentinel, Upstash REST). A new backend
passes these to be driven by a Worker; see docs/queue.md, "Writing a backend"."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from redkeep.queue import JobSpec, JobStatus, MemoryJobQueue, RedisJobQueue
from redkeep.queue.base import JobQueue
from redkeep.queue.protocol import Outcome, StepRequest, WorkerQueue, new_request_id
from tests.support.clients import TRANSPORTS, open_client

BACKENDS = ["memory", *TRANSPORTS]


@pytest.fixture(params=BACKENDS)
async def queue(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Any]:
    name = f"p-{uuid.uuid4().hex[:8]}"
    if request.param == "memory":
        yield MemoryJobQueue(name)
        return
    client = open_client(request, request.param)
    try:
        yield RedisJobQueue(client, name, key_prefix=prefix, poll_max_rate=50.0)
    finally:
        await client.close()


def _blocking(q: JobQueue) -> bool:
    client = getattr(q, "client", None)
    return client is None or bool(client.capabilities.blocking)


async def test_backends_implement_the_protocol(queue: JobQueue) -> None:
    assert isinstance(queue, WorkerQueue)
    await queue.worker_started("w1")
    lift = queue.spin_only_while(lambda: True)
    lift()
    assert queue.backoff_for(await queue.enqueue("x")) == queue.default_backoff


async def test_step_claims_in_run_order_with_fencing_tokens(queue: JobQueue) -> None:
    low = await queue.enqueue("x", "low", priority=-1)
    high = await queue.enqueue("x", "high", priority=5)
    res = await queue.step(StepRequest("w1", new_request_id("w1", 1), [], 1, 30.0))
    assert [j.id for j in res.jobs] == [high.id] and res.more
    job = res.jobs[0]
    assert (job.status, job.attempts, job.token, job.worker_id) == ("active", 1, 1, "w1")
    assert job.payload == "high" and job.started_at is not None
    rest = await queue.step(StepRequest("w1", new_request_id("w1", 2), [], 5, 30.0))
    assert [j.id for j in rest.jobs] == [low.id] and not rest.more


async def test_a_resent_step_returns_the_same_jobs_and_applies_nothing_twice(
    queue: JobQueue,
) -> None:
    await queue.enqueue_many([JobSpec("x", i) for i in range(3)])
    claim = StepRequest("w1", "req-1", [], 2, 30.0)
    first = await queue.step(claim)
    again = await queue.step(claim)  # the reply of the first was "lost"
    assert [(j.id, j.token) for j in again.jobs] == [(j.id, j.token) for j in first.jobs]
    counts = await queue.counts()
    assert (counts["active"], counts["waiting"]) == (2, 1)  # nothing more was claimed
    a, b = first.jobs
    report = StepRequest(
        "w1",
        "req-2",
        [
            Outcome(a.id, a.token, "done", '"ok"'),
            Outcome(b.id, b.token, "retry", '["E","m",""]', 60),
        ],
    )
    for _ in range(2):
        res = await queue.step(report)
        assert res.rejected == [] and res.jobs == []
    done, delayed = await queue.get_job(a.id), await queue.get_job(b.id)
    assert done is not None and done.status == JobStatus.COMPLETED and done.result == "ok"
    assert delayed is not None and delayed.status == JobStatus.DELAYED and delayed.attempts == 1
    # a new request with the same stale outcome is refused: it was applied once
    late = await queue.step(StepRequest("w1", "req-3", [Outcome(a.id, a.token, "done", '"x"')]))
    assert late.rejected == [a.id]


async def test_a_resent_step_omits_jobs_lost_meanwhile(queue: JobQueue) -> None:
    job = await queue.enqueue("x")
    claim = StepRequest("w1", "req-1", [], 1, 30.0)
    assert [j.id for j in (await queue.step(claim)).jobs] == [job.id]
    assert await queue.cancel(job.id) is True
    assert (await queue.step(claim)).jobs == []


async def test_extend_leases_renews_held_jobs_and_reports_lost_ones(queue: JobQueue) -> None:
    kept, gone = await queue.enqueue("x"), await queue.enqueue("x")
    res = await queue.step(StepRequest("w1", "r1", [], 2, 0.3))
    held = [(j.id, j.token) for j in res.jobs]
    assert await queue.cancel(gone.id)
    for _ in range(2):  # renewing twice is harmless
        assert await queue.extend_leases("w1", [*held, ("nope", 1)], 30.0) == [gone.id, "nope"]
    await asyncio.sleep(0.4)  # past the first lease: renewed, so not recovered
    res = await queue.step(StepRequest("w2", "r2", [], 1, 30.0))
    assert res.recovered == 0 and res.jobs == []
    job = await queue.get_job(kept.id)
    assert job is not None and job.status == JobStatus.ACTIVE and job.attempts == 1


async def test_wait_is_woken_by_enqueue_and_ends_on_interrupt(queue: JobQueue) -> None:
    await queue.step(StepRequest("w1", "r1", [], 1, 30.0))
    if not _blocking(queue):  # polling transports: the wait is a bounded sleep
        assert await asyncio.wait_for(queue.wait_for_jobs("w1", 0.2), 5) is False
        return
    waiter = asyncio.create_task(queue.wait_for_jobs("w1", 5.0))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await queue.enqueue("x")
    assert await asyncio.wait_for(waiter, 4.0) is True
    waiter = asyncio.create_task(queue.wait_for_jobs("w1", 5.0))
    await asyncio.sleep(0.05)
    await queue.interrupt_wait("w1")
    assert await asyncio.wait_for(waiter, 4.0) is False
    await queue.worker_stopped("w1")


async def test_idle_worker_is_handed_a_job_by_the_enqueue(queue: JobQueue) -> None:
    if not isinstance(queue, RedisJobQueue) or not _blocking(queue):
        pytest.skip("direct hand-off needs Redis with blocking commands")
    await queue.step(StepRequest("w1", "r1", [], 4, 30.0, idle=5.0))  # registers idle
    waiter = asyncio.create_task(queue.wait_for_jobs("w1", 5.0))
    job = await queue.enqueue("x", {"n": 1})
    assert job.status == JobStatus.ACTIVE
    handed = await asyncio.wait_for(waiter, 4.0)
    assert not isinstance(handed, bool)
    assert (handed.id, handed.token, handed.worker_id, handed.payload) == (
        job.id,
        1,
        "w1",
        {"n": 1},
    )
    assert await queue.extend_leases("w1", [(job.id, 1)], 30.0) == []
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.worker_id == "w1"  # renewal names the popper
    done = await queue.step(StepRequest("w1", "r2", [Outcome(job.id, 1, "done", "1")]))
    assert done.rejected == []


async def test_worker_registry_lists_a_beating_worker_until_it_leaves(queue: JobQueue) -> None:
    registry = queue.worker_registry()
    assert registry is not None
    fields = {"host": "h1", "pid": 42, "queues": [queue.name], "concurrency": 2, "active": 1,
              "processed": 5}  # fmt: skip
    started = await registry.beat("w1", fields, ttl=30)
    again = await registry.beat("w1", {**fields, "processed": 6}, ttl=30)
    assert again == started  # the first heartbeat's time is kept
    [view] = await registry.list()
    assert {k: view[k] for k in fields} == {**fields, "processed": 6}  # type: ignore[literal-required]
    assert (view["id"], view["started_at"]) == ("w1", started)
    assert started <= view["last_heartbeat"] < started + 30
    await registry.remove("w1")
    assert await registry.list() == []
