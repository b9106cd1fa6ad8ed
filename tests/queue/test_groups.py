"""Groups contract (fair round-robin, per-group concurrency and rate), run on every backend."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redkeep.errors import InvalidJob
from redkeep.queue import GroupLimit, Job, JobSpec, JobStatus, RateLimit
from redkeep.queue.protocol import Outcome, StepRequest
from tests.queue.conftest import running, wait_until


def _step(q: Any, n: int, claim: int, outcomes: list[Outcome] | None = None, **kw: Any) -> Any:
    return q.step(StepRequest("w1", f"r{n}", outcomes or [], claim=claim, **kw))


async def test_group_is_stored_listed_and_counted(make_queue: Any) -> None:
    q = await make_queue()
    job = await q.enqueue("x", 1, group="tenant-42")
    assert job.group == "tenant-42" and job.status == JobStatus.WAITING
    [batch] = await q.enqueue_many([JobSpec("x", 2, group="t.7")])
    got = await q.get_job(job.id)
    assert got is not None and got.group == "tenant-42"
    assert (await q.counts())["waiting"] == 2
    listed = await q.list_jobs("waiting")
    assert {j.id: j.group for j in listed} == {job.id: "tenant-42", batch.id: "t.7"}
    assert (await q.enqueue("x")).group is None


@pytest.mark.parametrize("group", ["", "a" * 101, "a b", "x|y", "-x", 5])
async def test_bad_group_is_refused_and_writes_nothing(make_queue: Any, group: Any) -> None:
    q = await make_queue()
    with pytest.raises(InvalidJob, match="group"):
        await q.enqueue("x", group=group)
    with pytest.raises(InvalidJob, match="group"):
        await q.enqueue_many([JobSpec("x"), JobSpec("x", group=group)])
    assert sum((await q.counts()).values()) == 0


async def test_set_get_and_clear_group_limit(make_queue: Any) -> None:
    q = await make_queue()
    assert await q.get_group_limit() is None
    assert await q.set_group_limit(concurrency=2) == GroupLimit(2, None)
    await q.set_group_limit(concurrency=3, max_jobs=10, per_seconds=1)
    assert await q.get_group_limit() == GroupLimit(3, RateLimit(10, 1.0))
    await q.set_group_limit(max_jobs=5, per_seconds=2)
    assert await q.get_group_limit() == GroupLimit(None, RateLimit(5, 2.0))
    assert await q.set_group_limit() is None
    assert await q.get_group_limit() is None


@pytest.mark.parametrize(
    ("opts", "field"),
    [({"concurrency": 0}, "concurrency"), ({"concurrency": -1}, "concurrency"),
     ({"concurrency": 1.5}, "concurrency"), ({"max_jobs": 0, "per_seconds": 1}, "max_jobs"),
     ({"max_jobs": 5}, "per_seconds"), ({"per_seconds": 5}, "per_seconds"),
     ({"max_jobs": 5, "per_seconds": 0}, "per_seconds")],
)  # fmt: skip
async def test_bad_group_limits_are_refused(make_queue: Any, opts: Any, field: str) -> None:
    q = await make_queue()
    await q.set_group_limit(concurrency=4)
    with pytest.raises(InvalidJob, match=field):
        await q.set_group_limit(**opts)
    assert await q.get_group_limit() == GroupLimit(4, None)


async def test_concurrency_per_group_and_slot_freed_by_outcome(make_queue: Any) -> None:
    q = await make_queue()
    await q.set_group_limit(concurrency=2)
    await q.enqueue_many([JobSpec("x", i, group="a") for i in range(6)])
    await q.enqueue_many([JobSpec("x", i, group="b") for i in range(2)])
    first = await _step(q, 1, 10, idle=1.5)
    assert sorted(j.group for j in first.jobs) == ["a", "a", "b", "b"]
    assert first.more is False  # the rest of a waits for a slot: no busy loop
    assert (await _step(q, 2, 10)).jobs == []
    done = next(j for j in first.jobs if j.group == "a")
    res = await _step(q, 3, 10, [Outcome(done.id, done.token, "done", "null")])
    assert [j.group for j in res.jobs] == ["a"]
    assert (await q.counts())["waiting"] == 3


async def test_groups_are_served_round_robin(make_queue: Any) -> None:
    q = await make_queue()
    await q.enqueue_many([JobSpec("x", i, group="big") for i in range(300)])
    await q.enqueue_many([JobSpec("x", i, group="small") for i in range(5)])
    await q.enqueue_many([JobSpec("x", 99, group="small", priority=5)])
    claimed: list[Job] = []
    for n in range(12):
        claimed += (await _step(q, n, 1)).jobs
    small = [j for j in claimed if j.group == "small"]
    assert len(small) == 6  # every other claim
    assert small[0].payload == 99  # priority first within the group
    assert [j.payload for j in small[1:]] == [0, 1, 2, 3, 4]  # then FIFO
    big = [j.payload for j in claimed if j.group == "big"]
    assert big == list(range(6))


async def test_ungrouped_jobs_share_the_claim(make_queue: Any) -> None:
    q = await make_queue()
    await q.enqueue_many([JobSpec("x", i, group="g") for i in range(10)])
    await q.enqueue_many([JobSpec("x", i) for i in range(10)])
    res = await _step(q, 1, 10)
    assert sum(1 for j in res.jobs if j.group is None) == 5
    assert sum(1 for j in res.jobs if j.group == "g") == 5
    assert res.more is True


async def test_one_at_a_time_claims_starve_neither_side(make_queue: Any) -> None:
    q = await make_queue()
    await q.enqueue_many([JobSpec("x", i, group="g") for i in range(40)])
    await q.enqueue_many([JobSpec("x", i) for i in range(40)])
    claimed = [j for n in range(30) for j in (await _step(q, n, 1)).jobs]
    grouped = sum(1 for j in claimed if j.group == "g")
    assert len(claimed) == 30 and 3 <= grouped <= 27, grouped


async def test_group_rate_limit(make_queue: Any) -> None:
    q = await make_queue()
    await q.set_group_limit(max_jobs=2, per_seconds=0.5)
    await q.enqueue_many([JobSpec("x", i, group="a") for i in range(4)])
    await q.enqueue_many([JobSpec("x", i, group="b") for i in range(1)])
    res = await _step(q, 1, 10)
    assert sorted(j.group for j in res.jobs) == ["a", "a", "b"]
    again = await _step(q, 2, 10)
    assert again.jobs == [] and again.more is False
    assert again.next_due is not None and again.next_due <= 0.5  # when a's window has room

    async def rest_claimed() -> bool:
        return len((await _step(q, int(asyncio.get_running_loop().time() * 1e6), 10)).jobs) == 2

    await wait_until(rest_claimed, timeout=5, interval=0.1)


async def test_cancel_and_lease_expiry_release_a_group_slot(make_queue: Any) -> None:
    q = await make_queue()
    await q.set_group_limit(concurrency=1)
    await q.enqueue_many([JobSpec("x", i, group="a") for i in range(3)])
    [first] = (await _step(q, 1, 5, lease=0.2)).jobs
    assert await q.cancel(first.id)
    [second] = (await _step(q, 2, 5, lease=0.2)).jobs  # the cancelled one left its slot
    assert (await _step(q, 3, 5)).jobs == []

    async def reclaimed() -> bool:  # lease expired: the job waits again, its slot is free
        res = await q.step(StepRequest("w2", f"x{asyncio.get_running_loop().time()}", claim=5))
        return len(res.jobs) == 1

    await wait_until(reclaimed, timeout=5, interval=0.1)
    back = await q.get_job(second.id)
    assert back is not None and back.error is not None and back.error.type == "LeaseExpired"
    assert (await q.counts())["active"] == 1  # one slot, one active job


async def test_raising_the_group_limit_takes_effect_at_once(make_queue: Any) -> None:
    q = await make_queue()
    await q.set_group_limit(concurrency=1)
    await q.enqueue_many([JobSpec("x", i, group="a") for i in range(3)])
    assert len((await _step(q, 1, 5)).jobs) == 1
    await q.set_group_limit(concurrency=3)
    assert len((await _step(q, 2, 5)).jobs) == 2


async def test_worker_never_runs_more_than_the_group_concurrency(make_queue: Any) -> None:
    q = await make_queue()
    await q.set_group_limit(concurrency=2)
    level: dict[str, int] = {}
    peak: dict[str, int] = {}
    done: list[int] = []

    async def handler(job: Job) -> None:
        g = job.group or "-"
        level[g] = level.get(g, 0) + 1
        peak[g] = max(peak.get(g, 0), level[g])
        await asyncio.sleep(0.05)
        level[g] -= 1
        done.append(job.payload)

    specs = [JobSpec("x", i, group=f"g{i % 3}") for i in range(18)]
    async with running(q, {"x": handler}, concurrency=10):
        await q.enqueue_many(specs)
        await wait_until(lambda: _true(len(done) == 18), timeout=15)
    assert peak == {"g0": 2, "g1": 2, "g2": 2}


async def test_deleted_and_restored_grouped_jobs(make_queue: Any) -> None:
    q = await make_queue()
    await q.set_group_limit(concurrency=5)
    jobs = await q.enqueue_many([JobSpec("x", i, group="g") for i in range(3)])
    assert await q.delete_job(jobs[0].id)
    claimed = (await _step(q, 1, 10)).jobs
    assert sorted(j.payload for j in claimed) == [1, 2]  # the deleted one is skipped
    other = await make_queue()
    original = await q.get_job(jobs[1].id)
    assert original is not None and await other.restore_job(original)
    back = await other.get_job(jobs[1].id)
    assert back is not None and back.group == "g" and back.status == JobStatus.ACTIVE

    async def reclaimed() -> bool:  # its lease is over: it waits in its group again
        res = await other.step(StepRequest("w", f"r{asyncio.get_running_loop().time()}", claim=5))
        return [j.group for j in res.jobs] == ["g"]

    await wait_until(reclaimed, timeout=5, interval=0.05)


async def _true(value: bool) -> bool:
    return value
