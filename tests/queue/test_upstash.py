"""The queue over the Upstash REST transport (emulator): no blocking commands, so workers poll."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from redkeep.queue import Job, JobSpec, JobStatus, RedisJobQueue
from tests.queue.conftest import running, wait_status

pytestmark = pytest.mark.upstash


@pytest.fixture
async def upstash_client(upstash_emulator: Any) -> AsyncIterator[Any]:
    from redkeep.redis.upstash import UpstashRestClient

    client = UpstashRestClient(upstash_emulator.url, upstash_emulator.token)
    try:
        yield client
    finally:
        await client.close()


async def test_enqueue_and_inspect_over_rest(upstash_client: Any, prefix: str) -> None:
    q = RedisJobQueue(upstash_client, "rest", key_prefix=prefix)
    job = await q.enqueue("add", {"a": 1, "b": 2}, priority=2, job_id="j1")
    again = await q.enqueue("add", {"a": 9}, job_id="j1")
    assert again.id == job.id and again.payload == {"a": 1, "b": 2}
    many = await q.enqueue_many([JobSpec("add", {"a": i, "b": 0}) for i in range(5)])
    delayed = await q.enqueue("add", delay=3600, headers={"traceparent": "00-ab-cd-01"})
    assert delayed.status == JobStatus.DELAYED
    stored = await q.get_job(delayed.id)
    assert stored is not None and stored.headers == {"traceparent": "00-ab-cd-01"}
    got = await q.get_job("j1")
    assert got is not None and got.priority == 2 and got.payload == {"a": 1, "b": 2}
    counts = await q.counts()
    assert counts["waiting"] == 6 and counts["delayed"] == 1
    listed = await q.list_jobs("waiting", 0, 10)
    assert listed[0].id == "j1"  # highest priority first
    assert {j.id for j in listed[1:]} == {j.id for j in many}
    assert await q.cancel(delayed.id) is True
    assert (await q.counts())["cancelled"] == 1


async def test_polling_worker_over_rest(upstash_client: Any, prefix: str) -> None:
    assert upstash_client.capabilities.blocking is False
    q = RedisJobQueue(upstash_client, "rest-worker", key_prefix=prefix, poll_max_rate=5.0)

    async def add(job: Job) -> int:
        return int(job.payload["a"] + job.payload["b"])

    first = await q.enqueue("add", {"a": 2, "b": 3})
    steps = 0
    original = q.step

    async def counting_step(*args: Any, **kwargs: Any) -> Any:
        nonlocal steps
        steps += 1
        return await original(*args, **kwargs)

    q.step = counting_step  # type: ignore[method-assign]
    async with running(q, {"add": add}, prefetch=0):
        done = await wait_status(q, first.id, "completed")
        assert done.result == 5
        # idle: polls stay under the configured ceiling (5/s) for this second
        await asyncio.sleep(0.3)
        before = steps
        await asyncio.sleep(1.0)
        assert steps - before <= 5 + 1
        # and a job enqueued while idle is still picked up by polling
        later = await q.enqueue("add", {"a": 10, "b": 1})
        assert (await wait_status(q, later.id, "completed")).result == 11


async def test_wait_events_and_schedules_over_rest(upstash_client: Any, prefix: str) -> None:
    q = RedisJobQueue(upstash_client, "rest-events", key_prefix=prefix)
    job = await q.enqueue("add", {"a": 1, "b": 2})
    await q.schedule("often", "add", {"a": 0, "b": 0}, every=3600)
    assert [s.id for s in await q.list_schedules()] == ["often"]
    async with running(q, {"add": lambda j: j.payload["a"] + j.payload["b"]}):
        done = await q.wait(job.id, timeout=10)  # polls with back-off: no blocking commands
    assert done.status == JobStatus.COMPLETED and done.result == 3
    assert [e.event for e in await q.job_events(job.id)] == ["enqueued", "active", "completed"]
    follower = q.events(since=(await q.read_events(limit=1))[0].id)
    nxt = await asyncio.wait_for(follower.__anext__(), 10)
    assert nxt.event == "active"
    assert (await q.throughput(1))[-1].completed == 1


async def test_a_worker_fires_schedules_over_rest(upstash_client: Any, prefix: str) -> None:
    q = RedisJobQueue(upstash_client, "rest-sched", key_prefix=prefix)
    await q.schedule("beat", "add", {"a": 1, "b": 1}, every=0.5)
    ran: list[str] = []

    def add(job: Any) -> int:
        ran.append(job.id)
        return int(job.payload["a"] + job.payload["b"])

    async with running(q, {"add": add}):
        deadline = asyncio.get_running_loop().time() + 20
        while len(ran) < 2:
            assert asyncio.get_running_loop().time() < deadline, "no two ticks ran in 20 s"
            await asyncio.sleep(0.1)
        assert await q.pause_schedule("beat")
    ticks = sorted(int(i.rsplit(":", 1)[1]) for i in ran)
    assert all(i.startswith("sched:beat:") for i in ran) and len(set(ticks)) == len(ticks)
    assert all(b - a == 500 for a, b in itertools.pairwise(ticks))  # consecutive, each once
    s = await q.get_schedule("beat")
    assert s is not None and s.last_job_id is not None


async def test_rate_limit_and_groups_over_rest(upstash_client: Any, prefix: str) -> None:
    q = RedisJobQueue(upstash_client, "rest-limits", key_prefix=prefix, poll_max_rate=10.0)
    await q.set_rate_limit(3, 60)
    await q.set_group_limit(concurrency=1)
    started: list[tuple[str | None, Any]] = []
    gate = asyncio.Event()

    async def work(job: Job) -> None:
        started.append((job.group, job.payload))
        await gate.wait()

    await q.enqueue_many([JobSpec("work", i, group="a") for i in range(3)])
    await q.enqueue_many([JobSpec("work", i) for i in range(3)])
    async with running(q, {"work": work}, concurrency=10):
        deadline = asyncio.get_running_loop().time() + 10
        while len(started) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert len(started) == 3  # the rate limit
        assert sum(1 for g, _ in started if g == "a") == 1  # the group's concurrency
        gate.set()
    assert await q.get_rate_limit() is not None
