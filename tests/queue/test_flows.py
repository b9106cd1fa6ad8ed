"""Flows contract (docs/flows.md), on every backend: depends_on, blocked status, release on
completion, on_parent_failure, parent_results, retention guard, chain and group (atomic)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redkeep.queue import InvalidJob, Job, JobSpec, JobStatus, RetentionPolicy
from redkeep.queue.protocol import Outcome, StepRequest
from tests.queue.conftest import running, wait_status, wait_until


def _ok(job: Job) -> Any:
    return {"name": job.payload, "parents": dict(job.parent_results or {})}


def _boom(job: Job) -> Any:
    raise ValueError("boom")


async def test_child_is_blocked_until_its_parents_complete(make_queue: Any) -> None:
    q = await make_queue()
    a = await q.enqueue("ok", "a")
    b = await q.enqueue("ok", "b")
    child = await q.enqueue("ok", "c", depends_on=[a.id, b.id])
    assert child.status == JobStatus.BLOCKED
    assert child.depends_on == (a.id, b.id) and child.on_parent_failure == "fail"
    stored = await q.get_job(child.id)
    assert stored is not None and stored.status == JobStatus.BLOCKED
    assert stored.depends_on == (a.id, b.id)
    counts = await q.counts()
    assert (counts["blocked"], counts["waiting"]) == (1, 2)
    assert [j.id for j in await q.list_jobs("blocked")] == [child.id]
    async with running(q, {"ok": _ok}, concurrency=2):
        done = await wait_status(q, child.id, "completed")
    assert done.result["parents"] == {
        a.id: {"name": "a", "parents": {}},
        b.id: {"name": "b", "parents": {}},
    }
    assert (await q.counts())["blocked"] == 0


async def test_child_of_completed_parent_runs_at_once(make_queue: Any) -> None:
    q = await make_queue()
    a = await q.enqueue("ok", "a")
    async with running(q, {"ok": _ok}, concurrency=1):
        await wait_status(q, a.id, "completed")
        child = await q.enqueue("ok", "c", depends_on=[a.id])
        assert child.status == JobStatus.WAITING
        done = await wait_status(q, child.id, "completed")
    assert done.result["parents"] == {a.id: {"name": "a", "parents": {}}}


@pytest.mark.parametrize("mode", ["fail", "cancel", "ignore"])
async def test_failed_parent_applies_on_parent_failure(make_queue: Any, mode: str) -> None:
    q = await make_queue()
    bad = await q.enqueue("boom", max_attempts=1)
    good = await q.enqueue("ok", "g")
    child = await q.enqueue("ok", "c", depends_on=[bad.id, good.id], on_parent_failure=mode)
    grandchild = await q.enqueue("ok", "gc", depends_on=[child.id])
    async with running(q, {"ok": _ok, "boom": _boom}, concurrency=2):
        if mode == "fail":
            got = await wait_status(q, child.id, "failed")
            assert got.error.type == "ParentFailed" and bad.id in got.error.message
            assert "failed" in got.error.message
            gc = await wait_status(q, grandchild.id, "failed")  # fail goes down the flow
            assert child.id in gc.error.message
        elif mode == "cancel":
            await wait_status(q, child.id, "cancelled")
            await wait_status(q, grandchild.id, "failed")
        else:
            got = await wait_status(q, child.id, "completed")
            assert got.result["parents"] == {bad.id: None, good.id: {"name": "g", "parents": {}}}
            await wait_status(q, grandchild.id, "completed")
    assert (await q.counts())["blocked"] == 0


@pytest.mark.parametrize("mode", ["fail", "cancel", "ignore"])
async def test_parent_already_failed_at_enqueue(make_queue: Any, mode: str) -> None:
    q = await make_queue()
    bad = await q.enqueue("boom", max_attempts=1)
    async with running(q, {"boom": _boom}, concurrency=1):
        await wait_status(q, bad.id, "failed")
    child = await q.enqueue("ok", depends_on=[bad.id], on_parent_failure=mode)
    expected = {"fail": "failed", "cancel": "cancelled", "ignore": "waiting"}[mode]
    got = await q.get_job(child.id)
    assert got is not None and got.status == expected == child.status
    if mode == "fail":
        assert got.error is not None and bad.id in got.error.message


async def test_cancelling_a_parent_or_a_blocked_child(make_queue: Any) -> None:
    q = await make_queue()
    parent = await q.enqueue("ok", "p")
    child = await q.enqueue("ok", "c", depends_on=[parent.id], on_parent_failure="cancel")
    other = await q.enqueue("ok", "o", depends_on=[parent.id])
    assert await q.cancel(parent.id)
    assert (await q.get_job(child.id)).status == JobStatus.CANCELLED  # type: ignore[union-attr]
    failed = await q.get_job(other.id)
    assert failed is not None and failed.status == JobStatus.FAILED
    assert failed.error is not None and "cancelled" in failed.error.message
    p2 = await q.enqueue("ok", "p2")
    blocked = await q.enqueue("ok", "b", depends_on=[p2.id])
    assert await q.cancel(blocked.id)
    assert (await q.counts())["blocked"] == 0
    async with running(q, {"ok": _ok}, concurrency=1):
        await wait_status(q, p2.id, "completed")
    assert (await q.get_job(blocked.id)).status == JobStatus.CANCELLED  # type: ignore[union-attr]


async def test_bad_dependencies_are_rejected_and_write_nothing(make_queue: Any) -> None:
    q = await make_queue()
    with pytest.raises(InvalidJob, match="unknown job nope"):
        await q.enqueue("ok", depends_on=["nope"])
    with pytest.raises(InvalidJob, match="depend on itself"):
        await q.enqueue("ok", job_id="me", depends_on=["me"])
    with pytest.raises(InvalidJob, match="on_parent_failure"):
        await q.enqueue("ok", depends_on=["x"], on_parent_failure="retry")
    with pytest.raises(InvalidJob, match="list of job ids"):
        await q.enqueue("ok", depends_on="abc")
    with pytest.raises(InvalidJob, match="dedup_key"):
        await q.enqueue("ok", depends_on=["x"], dedup_key="k")
    with pytest.raises(InvalidJob, match="group cannot be combined"):
        await q.enqueue("ok", depends_on=["x"], group="tenant-1")
    a = await q.enqueue("ok")
    with pytest.raises(InvalidJob, match="unknown job ghost"):
        await q.enqueue_many([JobSpec("ok", job_id="n1"), JobSpec("ok", depends_on=["ghost"])])
    # a parent later in the same call is unknown when its child is written: no cycle possible
    with pytest.raises(InvalidJob, match="unknown job late"):
        await q.enqueue_many([JobSpec("ok", depends_on=["late"]), JobSpec("ok", job_id="late")])
    assert [j.id async for j in q.dump_jobs()] == [a.id]


async def test_chain_runs_in_order_with_previous_result(make_queue: Any) -> None:
    q = await make_queue()
    order: list[str] = []

    def step(job: Job) -> Any:
        order.append(job.payload)
        previous = list((job.parent_results or {}).values())
        return (previous[0] if previous else 0) + 1

    flow = await q.chain(*(JobSpec("step", f"s{i}") for i in range(5)))
    assert [j.status for j in flow.jobs] == [JobStatus.WAITING] + [JobStatus.BLOCKED] * 4
    assert flow.jobs[3].depends_on == (flow.ids[2],)
    async with running(q, {"step": step}, concurrency=4):
        last = await flow.wait(timeout=20)
    assert last.result == 5 and order == [f"s{i}" for i in range(5)]
    again = await q.chain(*(JobSpec("step", job_id=i) for i in flow.ids))  # a re-send
    assert again.ids == flow.ids and again.last.status == JobStatus.COMPLETED


async def test_group_then_runs_once_with_every_result(make_queue: Any) -> None:
    q = await make_queue()
    calls: list[int] = []

    def total(job: Job) -> Any:
        calls.append(1)
        return sum((job.parent_results or {}).values())

    flow = await q.group(
        [JobSpec("double", i) for i in range(50)], then=JobSpec("total", job_id="sum")
    )
    assert len(flow.ids) == 51 and flow.last.id == "sum"
    assert flow.last.status == JobStatus.BLOCKED and len(flow.last.depends_on) == 50
    async with running(q, {"double": lambda job: job.payload * 2, "total": total}, concurrency=8):
        last = await flow.wait(timeout=30)
    assert last.result == sum(2 * i for i in range(50)) and calls == [1]


async def test_flow_with_one_invalid_spec_writes_nothing(make_queue: Any) -> None:
    q = await make_queue()
    with pytest.raises(InvalidJob, match="job 2: priority"):
        await q.chain(JobSpec("a"), JobSpec("b"), JobSpec("c", priority=10**6))
    with pytest.raises(InvalidJob, match="unknown job outside"):
        await q.group([JobSpec("a"), JobSpec("b", depends_on=["outside"])], then=JobSpec("c"))
    with pytest.raises(InvalidJob):
        await q.group([])
    assert [j async for j in q.dump_jobs()] == []
    assert sum((await q.counts()).values()) == 0


async def test_retention_keeps_a_parent_while_its_child_is_unfinished(make_queue: Any) -> None:
    q = await make_queue(retention=RetentionPolicy(0, 0, 0, 0))
    gate = asyncio.Event()

    async def slow(job: Job) -> Any:
        await gate.wait()
        return dict(job.parent_results or {})

    parent = await q.enqueue("ok", "p")
    child = await q.enqueue("slow", depends_on=[parent.id])
    plain = await q.enqueue("ok", "plain")
    async with running(q, {"ok": _ok, "slow": slow}, concurrency=2):
        await wait_status(q, child.id, "active")

        async def plain_trimmed() -> bool:
            return await q.get_job(plain.id) is None

        await wait_until(plain_trimmed)  # retention runs, yet keeps the parent
        kept = await q.get_job(parent.id)
        assert kept is not None and kept.status == JobStatus.COMPLETED
        gate.set()

        async def all_trimmed() -> bool:
            return await q.get_job(parent.id) is None and await q.get_job(child.id) is None

        await wait_until(all_trimmed, timeout=15)
    assert sum((await q.counts()).values()) == 0


async def test_last_two_parents_finishing_together_release_the_child_once(
    make_queue: Any,
) -> None:
    # Two workers (two connections on Redis) report the last two parents in the same instant,
    # 20 times over: each child is released exactly once and claimed once.
    q = await make_queue()
    q2 = q if make_queue.backend == "memory" else await make_queue(name=q.name)
    for round_ in range(20):
        a = await q.enqueue("p", job_id=f"a{round_}")
        b = await q.enqueue("p", job_id=f"b{round_}")
        child = await q.enqueue("c", depends_on=[a.id, b.id], job_id=f"c{round_}")
        got_a = await q.step(StepRequest("wa", f"wa-claim-{round_}", claim=1))
        got_b = await q2.step(StepRequest("wb", f"wb-claim-{round_}", claim=1))
        (ja,), (jb,) = got_a.jobs, got_b.jobs
        assert {ja.id, jb.id} == {a.id, b.id}
        await asyncio.gather(
            q.step(StepRequest("wa", f"wa-done-{round_}", [Outcome(ja.id, ja.token, "done", "1")])),
            q2.step(
                StepRequest("wb", f"wb-done-{round_}", [Outcome(jb.id, jb.token, "done", "2")])
            ),
        )
        assert (await q.counts())["waiting"] == 1
        events = [e.event for e in await q.job_events(child.id)]
        assert events.count("waiting") == 1
        claimed = await q.step(StepRequest("wa", f"wa-child-{round_}", claim=5))
        assert [j.id for j in claimed.jobs] == [child.id]
        assert claimed.jobs[0].parent_results == {a.id: 1, b.id: 2}
        done = Outcome(child.id, claimed.jobs[0].token, "done", "null")
        await q.step(StepRequest("wa", f"wa-child-done-{round_}", [done]))
    assert (await q.counts())["completed"] == 60


async def test_deleting_an_unfinished_parent_counts_as_cancelled(make_queue: Any) -> None:
    q = await make_queue()
    parent = await q.enqueue("ok", "p")
    failing = await q.enqueue("ok", depends_on=[parent.id])
    ignoring = await q.enqueue("ok", depends_on=[parent.id], on_parent_failure="ignore")
    assert await q.delete_job(parent.id)
    got = await q.get_job(failing.id)
    assert got is not None and got.status == JobStatus.FAILED
    assert got.error is not None and f"parent job {parent.id} cancelled" in got.error.message
    released = await q.get_job(ignoring.id)
    assert released is not None and released.status == JobStatus.WAITING
    async with running(q, {"ok": _ok}, concurrency=1):
        done = await wait_status(q, ignoring.id, "completed")
    assert done.result["parents"] == {parent.id: None}


@pytest.mark.parametrize("mode", ["fail", "cancel", "ignore"])
async def test_chain_of_five_across_two_queues(make_queue: Any, mode: str) -> None:
    # A, B, A, B, A; the third step (queue A) fails, the fourth (queue B) has `mode`.
    qa = await make_queue()
    qb = await make_queue(name=f"{qa.name}-b")

    def step(job: Job) -> Any:
        if job.payload == "boom":
            raise ValueError("boom")
        previous = [v for v in (job.parent_results or {}).values() if v is not None]
        return (previous[0] if previous else 0) + 1

    specs = [
        JobSpec("step", 0),
        JobSpec("step", 1, queue=qb.name),
        JobSpec("step", "boom", max_attempts=1),
        JobSpec("step", 3, queue=qb.name, on_parent_failure=mode),
        JobSpec("step", 4),
    ]
    flow = await qa.chain(*specs)
    assert [j.queue for j in flow.jobs] == [qa.name, qb.name, qa.name, qb.name, qa.name]
    assert [j.status for j in flow.jobs] == [JobStatus.WAITING] + [JobStatus.BLOCKED] * 4
    # a parent of the other queue is named <queue>/<id> (its proxy in the child's queue)
    assert flow.jobs[1].depends_on == (f"{qa.name}/{flow.ids[0]}",)
    assert flow.jobs[2].depends_on == (f"{qb.name}/{flow.ids[1]}",)
    async with running([qa, qb], {"step": step}, concurrency=2):
        last = await qa.wait(flow.ids[-1], timeout=30)
        fourth = await qb.wait(flow.ids[3], timeout=30)
    second = await qb.get_job(flow.ids[1])
    assert second is not None and second.result == 2
    if mode == "fail":
        assert fourth.status == JobStatus.FAILED and fourth.error is not None
        assert f"{qa.name}/{flow.ids[2]} failed" in fourth.error.message
        assert last.status == JobStatus.FAILED
    elif mode == "cancel":
        assert fourth.status == JobStatus.CANCELLED
        assert last.status == JobStatus.FAILED and "cancelled" in last.error.message  # type: ignore[union-attr]
    else:
        assert fourth.status == JobStatus.COMPLETED and fourth.result == 1
        assert last.status == JobStatus.COMPLETED and last.result == 2


async def test_unknown_parent_of_another_queue_writes_nothing(make_queue: Any) -> None:
    qa = await make_queue()
    qb = await make_queue(name=f"{qa.name}-b")
    with pytest.raises(InvalidJob, match="unknown job ghost of queue"):
        await qb.enqueue("x", depends_on=[(qa.name, "ghost")])
    with pytest.raises(InvalidJob, match="unknown job ghost of queue"):
        await qa.chain(JobSpec("x"), JobSpec("y", queue=qb.name, depends_on=[(qa.name, "ghost")]))
    assert sum((await qa.counts()).values()) == 0 and sum((await qb.counts()).values()) == 0
    parent = await qa.enqueue("x")
    child = await qb.enqueue("y", depends_on=[parent])  # a Job names its queue
    assert child.status == JobStatus.BLOCKED and child.depends_on == (f"{qa.name}/{parent.id}",)
    proxy = await qb.get_job(f"{qa.name}/{parent.id}")  # the parent's proxy in queue B
    assert proxy is not None and proxy.status == JobStatus.BLOCKED
    async with running([qa, qb], {"x": lambda job: "px", "y": _ok}, concurrency=2):
        done = await wait_status(qb, child.id, "completed", timeout=20)
    assert done.result["parents"] == {f"{qa.name}/{parent.id}": "px"}
    # a parent of another queue already completed (and retained): the child runs at once
    late = await qb.enqueue("y", depends_on=[parent])
    assert late.status == JobStatus.WAITING


async def test_parent_removed_by_retention_counts_as_completed(make_queue: Any) -> None:
    # Retention removes finished jobs at once; a completed one leaves a tombstone (`removed`).
    qa = await make_queue(retention=RetentionPolicy(0, 0, 0, 0))
    qb = await make_queue(name=f"{qa.name}-b")
    seen: dict[str, Any] = {}

    def record(job: Job) -> Any:
        seen[job.id] = dict(job.parent_results or {})

    handlers = {"ok": _ok, "boom": _boom, "record": record}
    parent = await qa.enqueue("ok", "p")
    bad = await qa.enqueue("boom", max_attempts=1)
    async with running([qa, qb], handlers, concurrency=2):

        async def both_removed() -> bool:
            return await qa.get_job(parent.id) is None and await qa.get_job(bad.id) is None

        await wait_until(both_removed)
        # a removed failed parent leaves no tombstone; a never-existing id is unknown
        for ghost in (bad.id, "never-existed"):
            with pytest.raises(InvalidJob, match=f"unknown job {ghost}"):
                await qa.enqueue("record", depends_on=[parent.id, ghost])
        child = await qa.enqueue("record", depends_on=[parent.id])
        assert child.status == JobStatus.WAITING  # not blocked on the removed parent
        # across queues: the proxy of the removed parent is completed, without result
        other = await qb.enqueue("record", depends_on=[(qa.name, parent.id)])
        assert other.status == JobStatus.WAITING

        async def both_ran() -> bool:
            return child.id in seen and other.id in seen

        await wait_until(both_ran)
    assert seen[child.id] == {parent.id: None}
    assert seen[other.id] == {f"{qa.name}/{parent.id}": None}
