"""The queue contract, run on every backend (memory, Redis RESP, Redis Cluster)."""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from redkeep.errors import PayloadTooLarge, SerializationError
from redkeep.queue import Backoff, InvalidJob, Job, JobSpec, JobStatus, RetentionPolicy
from redkeep.queue.protocol import Outcome, StepRequest
from tests.queue.conftest import running, wait_status, wait_until


async def test_enqueue_and_inspect(make_queue: Any) -> None:
    q = await make_queue()
    job = await q.enqueue("email", {"to": "a@example.com"}, priority=5, max_attempts=4, timeout=9)
    assert job.status == JobStatus.WAITING and job.attempts == 0
    got = await q.get_job(job.id)
    assert got is not None
    assert (got.name, got.payload, got.priority, got.max_attempts, got.timeout) == (
        "email", {"to": "a@example.com"}, 5, 4, 9.0,
    )  # fmt: skip
    assert got.created_at is not None and abs(got.created_at - time.time()) < 5
    assert await q.get_job("nope") is None
    counts = await q.counts()
    assert counts == {s.value: int(s == JobStatus.WAITING) for s in JobStatus}
    assert [j.id for j in await q.list_jobs("waiting")] == [job.id]


async def test_enqueue_with_job_id_is_idempotent(make_queue: Any) -> None:
    q = await make_queue()
    first = await q.enqueue("x", 1, job_id="order-1")
    again = await q.enqueue("x", 2, job_id="order-1")
    assert again.id == first.id == "order-1"
    assert again.payload == 1
    assert (await q.counts())["waiting"] == 1


async def test_idempotent_enqueue_with_20_concurrent_callers(make_queue: Any) -> None:
    q = await make_queue()
    jobs = await asyncio.gather(*(q.enqueue("x", i, job_id="same") for i in range(20)))
    assert {j.id for j in jobs} == {"same"}
    assert len({repr(j.payload) for j in jobs}) == 1
    assert (await q.counts())["waiting"] == 1
    assert len([j async for j in q.dump_jobs()]) == 1


async def test_finished_job_id_still_retained_is_not_re_added(make_queue: Any) -> None:
    q = await make_queue()
    await q.enqueue("x", job_id="once")
    async with running(q, {"x": lambda job: "ok"}, concurrency=1):
        await wait_status(q, "once", "completed")
    again = await q.enqueue("x", job_id="once")
    assert again.status == JobStatus.COMPLETED and again.result == "ok"
    assert (await q.counts())["waiting"] == 0


async def test_enqueue_many_returns_jobs_in_order(make_queue: Any) -> None:
    q = await make_queue()
    specs = [JobSpec("x", {"i": i}) for i in range(1200)]
    specs.append(JobSpec("x", "dup", job_id="fixed"))
    specs.append(JobSpec("x", "dup2", job_id="fixed"))
    jobs = await q.enqueue_many(specs)
    assert [j.payload for j in jobs[:1200]] == [{"i": i} for i in range(1200)]
    assert jobs[-1].id == jobs[-2].id == "fixed" and jobs[-1].payload == "dup"
    assert (await q.counts())["waiting"] == 1201
    assert await q.enqueue_many([]) == []


async def test_bad_input_is_rejected_with_typed_errors(make_queue: Any) -> None:
    q = await make_queue()
    with pytest.raises(InvalidJob, match="priority"):
        await q.enqueue("x", priority=5000)
    with pytest.raises(InvalidJob, match="name"):
        await q.enqueue("")
    with pytest.raises(InvalidJob, match="delay"):
        await q.enqueue("x", delay=-1)
    with pytest.raises(InvalidJob, match="not both"):
        await q.enqueue("x", delay=1, run_at=time.time())
    with pytest.raises(InvalidJob, match="max_attempts"):
        await q.enqueue("x", max_attempts=0)
    with pytest.raises(InvalidJob, match="timeout"):
        await q.enqueue("x", timeout=0)
    with pytest.raises(InvalidJob, match="unknown job status"):
        await q.list_jobs("bogus")
    with pytest.raises(InvalidJob, match="finished"):
        await q.purge("waiting")
    with pytest.raises(SerializationError, match="job payload cannot be serialized"):
        await q.enqueue("x", {"s": object()})
    assert sum((await q.counts()).values()) == 0


async def test_oversized_payload_raises_and_writes_nothing(make_queue: Any) -> None:
    q = await make_queue(max_payload_bytes=1000)
    with pytest.raises(PayloadTooLarge) as info:
        await q.enqueue("x", "a" * 2000)
    assert info.value.limit == 1000
    with pytest.raises(PayloadTooLarge):
        await q.enqueue_many([JobSpec("x", 1), JobSpec("x", "b" * 5000)])
    assert sum((await q.counts()).values()) == 0
    assert [j async for j in q.dump_jobs()] == []


ENQUEUE_VARIANTS: list[dict[str, Any]] = [
    {},
    {"payload": {"a": [1, "é"]}},
    {"priority": -7},
    {"priority": 1000, "payload": 0},
    {"delay": 60},
    {"delay": 0},
    {"run_at": 4_000_000_000.5},
    {"run_at": 1.0},
    {"max_attempts": 1},
    {"backoff": 2.5},
    {"backoff": Backoff(0.5, 8.0)},
    {"timeout": 1.5},
    {"job_id": "chosen"},
]


@pytest.mark.parametrize("opts", ENQUEUE_VARIANTS)
async def test_enqueue_returns_the_stored_job(make_queue: Any, opts: dict[str, Any]) -> None:
    # One enqueue and a batch of one (different script argument forms) store the same job, and
    # each returns exactly what get_job reads back.
    q = await make_queue()
    opts = dict(opts)
    payload = opts.pop("payload", None)
    one = await q.enqueue("x", payload, **opts)
    if "job_id" in opts:
        opts["job_id"] += "-many"
    (many,) = await q.enqueue_many([JobSpec("x", payload, **opts)])
    for job in (one, many):
        assert await q.get_job(job.id) == job
    status = JobStatus.DELAYED if opts.get("delay") or opts.get("run_at", 0) > 2e9 else "waiting"
    assert one.status == many.status == status
    assert replace(one, id="", created_at=0, run_at=0) == replace(
        many, id="", created_at=0, run_at=0
    )
    if "run_at" in opts and status == JobStatus.DELAYED:
        assert one.run_at == many.run_at == int(opts["run_at"] * 1000) / 1000
    elif status == JobStatus.WAITING:
        assert one.run_at == one.created_at and many.run_at == many.created_at


async def test_enqueue_rejects_what_the_common_path_cannot_validate(make_queue: Any) -> None:
    q = await make_queue()
    for bad in (True, 1.0, "1", None, -1001):
        with pytest.raises(InvalidJob, match="priority"):
            await q.enqueue("x", priority=bad)
    for name in (None, 5, "", "n" * 201, "x\nERROR forged log line", "x\r", "x\x00"):
        with pytest.raises(InvalidJob, match="name"):
            await q.enqueue(name)
    # ids and dedup keys end up in log lines too: no newline or other control character
    for job_id in ("", "i" * 201, "order-1\nCRITICAL forged", "a\tb", "a\x1b[31m", "a\u2028b"):
        with pytest.raises(InvalidJob, match="job_id"):
            await q.enqueue("x", job_id=job_id)
        with pytest.raises(InvalidJob, match="dedup_key"):
            await q.enqueue("x", dedup_key=job_id)
    assert (await q.enqueue("x", job_id="order 7/ü", dedup_key="user 7/ü")).id == "order 7/ü"
    await q.cancel("order 7/ü")
    tiny = await make_queue(max_payload_bytes=3)
    with pytest.raises(PayloadTooLarge):
        await tiny.enqueue("x")
    assert (await q.counts())["cancelled"] == 1 and (await q.counts())["waiting"] == 0
    assert sum((await tiny.counts()).values()) == 0


async def test_worker_runs_jobs_and_stores_results(make_queue: Any) -> None:
    q = await make_queue()

    async def add(job: Job) -> int:
        return int(job.payload["a"] + job.payload["b"])

    def mul(job: Job) -> dict[str, Any]:  # sync: runs in the thread pool
        thread = threading.current_thread().name
        return {"product": job.payload[0] * job.payload[1], "thread": thread}

    a = await q.enqueue("add", {"a": 2, "b": 3})
    m = await q.enqueue("mul", [4, 5])
    async with running(q, {"add": add, "mul": mul}, concurrency=4):
        done_a = await wait_status(q, a.id, "completed")
        done_m = await wait_status(q, m.id, "completed")
    assert done_a.result == 5 and done_a.attempts == 1 and done_a.error is None
    assert done_a.worker_id and done_a.started_at and done_a.finished_at
    assert done_a.started_at <= done_a.finished_at
    assert done_m.result["product"] == 20
    assert done_m.result["thread"].startswith("redkeep-job")
    assert (await q.counts())["completed"] == 2


EXACT_VALUES: dict[str, Any] = {
    "when": datetime(2026, 11, 27, 13, 19, 5, 123456, tzinfo=timezone(timedelta(hours=2))),
    "naive": datetime(2026, 1, 2, 3, 4, 5),
    "day": date(2026, 2, 28),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "pair": (1, "two", (3.5, None)),
    "price": Decimal("19.990"),
    "blob": b"\x00\xffbinary",
    "tags": {"a", "b"},
    "frozen": frozenset({1, 2}),
    "span": timedelta(days=1, seconds=2, microseconds=3),
    "big": 2**100,
    "neg_big": -(2**80),
    "inf": float("inf"),
    "ninf": float("-inf"),
    "tagged": {"__rk__": "user data, not a tag"},
}


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN, and the same types all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


async def test_payloads_and_results_round_trip_exactly(make_queue: Any) -> None:
    q = await make_queue()
    payload = {**EXACT_VALUES, "nan": float("nan"), "nested": [EXACT_VALUES["pair"]]}
    seen: list[Any] = []

    def echo(job: Job) -> Any:
        seen.append(job.payload)
        return job.payload

    job = await q.enqueue("echo", payload)
    (many,) = await q.enqueue_many([JobSpec("echo", payload)])
    assert _same((await q.get_job(job.id)).payload, payload)  # type: ignore[union-attr]
    async with running(q, {"echo": echo}):
        done = await wait_status(q, job.id, "completed")
        await wait_status(q, many.id, "completed")
    assert all(_same(p, payload) for p in seen) and len(seen) == 2
    assert _same(done.result, payload)


async def test_priority_order_and_fifo_within_priority(make_queue: Any) -> None:
    q = await make_queue()
    order: list[str] = []
    plan = [("low1", -5), ("mid1", 0), ("high", 10), ("mid2", 0), ("low2", -5), ("mid3", 0)]
    for label, prio in plan:
        await q.enqueue("rec", label, priority=prio)
    async with running(q, {"rec": lambda job: order.append(job.payload)}, concurrency=1):
        await wait_until(lambda: _true(len(order) == len(plan)))
    assert order == ["high", "mid1", "mid2", "mid3", "low1", "low2"]


async def _true(value: bool) -> bool:
    return value


async def test_delayed_job_never_starts_before_run_at(make_queue: Any) -> None:
    q = await make_queue()
    job = await q.enqueue("x", delay=1.5)
    assert job.status == JobStatus.DELAYED and job.run_at is not None
    at = await q.enqueue("x", run_at=time.time() + 1.0)
    assert at.status == JobStatus.DELAYED
    assert (await q.counts())["delayed"] == 2
    async with running(q, {"x": lambda job: None}, concurrency=2):
        await asyncio.sleep(0.2)
        assert (await q.get_job(job.id)).status == JobStatus.DELAYED  # type: ignore[union-attr]
        done = await wait_status(q, job.id, "completed", timeout=10)
        done_at = await wait_status(q, at.id, "completed", timeout=10)
    assert done.started_at >= job.run_at - 0.002  # ms resolution of the stored times
    assert done_at.started_at >= at.run_at - 0.002


async def test_failing_job_is_retried_with_backoff_then_fails(make_queue: Any) -> None:
    q = await make_queue()
    calls: list[float] = []

    def boom(job: Job) -> None:
        calls.append(time.time())
        raise ValueError(f"bad value {job.attempts}")

    job = await q.enqueue("boom", max_attempts=3, backoff=Backoff(0.2, 0.3))
    async with running(q, {"boom": boom}, concurrency=1):
        failed = await wait_status(q, job.id, "failed", timeout=15)
    assert failed.attempts == 3 and len(calls) == 3
    assert failed.error.type == "ValueError" and failed.error.message == "bad value 3"
    assert "Traceback" in failed.error.traceback and "boom" in failed.error.traceback
    # equal jitter: retry 1 waits 0.1-0.2 s, retry 2 waits 0.15-0.3 s (cap 0.3)
    assert calls[1] - calls[0] >= 0.1 - 0.01
    assert calls[2] - calls[1] >= 0.15 - 0.01
    assert await q.retry(job.id) is True
    assert await q.retry(job.id) is False
    again = await q.get_job(job.id)
    assert again.status == JobStatus.WAITING and again.attempts == 0  # type: ignore[union-attr]


async def test_retry_schedules_run_at_within_backoff_bounds(make_queue: Any) -> None:
    q = await make_queue()
    job = await q.enqueue("boom", max_attempts=2, backoff=Backoff(4.0, 60.0))

    def boom(job: Job) -> None:
        raise RuntimeError("once")

    async with running(q, {"boom": boom}, concurrency=1):
        delayed = await wait_status(q, job.id, "delayed")
    assert delayed.attempts == 1 and delayed.error.message == "once"
    wait = delayed.run_at - delayed.started_at
    # lower bound exact (equal jitter: >= half the step); upper bound + slack for a slow box
    assert 2.0 - 0.05 <= wait <= 4.0 + 2.0


async def test_handler_recovers_after_transient_failure(make_queue: Any) -> None:
    q = await make_queue()

    async def flaky(job: Job) -> str:
        if job.attempts < 2:
            raise ConnectionError("try again")
        return "ok"

    job = await q.enqueue("flaky", backoff=0.05)
    async with running(q, {"flaky": flaky}):
        done = await wait_status(q, job.id, "completed")
    assert done.result == "ok" and done.attempts == 2
    assert done.error is not None and done.error.type == "ConnectionError"


async def test_unknown_handler_and_bad_results_fail_but_worker_survives(make_queue: Any) -> None:
    q = await make_queue()
    unknown = await q.enqueue("nobody", max_attempts=5)
    unserializable = await q.enqueue("weird", max_attempts=1)
    slow = await q.enqueue("slow", max_attempts=1, timeout=0.1)
    good = await q.enqueue("good")

    async def slow_handler(job: Job) -> None:
        await asyncio.sleep(5)

    handlers = {"weird": lambda job: object(), "slow": slow_handler, "good": lambda job: 1}
    async with running(q, handlers):
        f1 = await wait_status(q, unknown.id, "failed")
        f2 = await wait_status(q, unserializable.id, "failed")
        f3 = await wait_status(q, slow.id, "failed")
        ok = await wait_status(q, good.id, "completed")
    assert f1.error.message == "no handler for 'nobody'" and f1.attempts == 1
    assert f2.error.type == "SerializationError" and "result" in f2.error.message
    assert f3.error.type == "TimeoutError"
    assert ok.result == 1


async def test_cancel_waiting_and_delayed_jobs_never_run(make_queue: Any) -> None:
    q = await make_queue()
    ran: list[str] = []
    w = await q.enqueue("x", "w")
    d = await q.enqueue("x", "d", delay=0.2)
    keep = await q.enqueue("x", "keep", delay=0.3)
    assert await q.cancel(w.id) is True
    assert await q.cancel(d.id) is True
    assert await q.cancel(d.id) is False
    assert await q.cancel("missing") is False
    async with running(q, {"x": lambda job: ran.append(job.payload)}):
        await wait_status(q, keep.id, "completed")
    assert ran == ["keep"]
    assert (await q.get_job(w.id)).status == JobStatus.CANCELLED  # type: ignore[union-attr]
    assert (await q.counts())["cancelled"] == 2


async def test_cancel_active_job_cancels_its_handler(make_queue: Any) -> None:
    q = await make_queue()
    started = asyncio.Event()
    outcome: list[str] = []

    async def long(job: Job) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
            outcome.append("finished")
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    job = await q.enqueue("long")
    async with running(q, {"long": long}, lease=0.6):
        await asyncio.wait_for(started.wait(), 10)
        assert await q.cancel(job.id) is True
        await wait_until(lambda: _true(outcome == ["cancelled"]), timeout=5)
    final = await q.get_job(job.id)
    assert final.status == JobStatus.CANCELLED and final.result is None  # type: ignore[union-attr]


async def test_graceful_stop_finishes_or_releases_active_jobs(make_queue: Any) -> None:
    q = await make_queue()
    quick = await q.enqueue("sleep", 0.2)
    stuck = await q.enqueue("sleep", 60)
    started: list[str] = []

    async def sleeper(job: Job) -> str:
        started.append(job.id)
        await asyncio.sleep(job.payload)
        return "slept"

    async with running(q, {"sleep": sleeper}, concurrency=2, grace_period=0.6) as worker:
        await wait_until(lambda: _true(len(started) == 2))
        t0 = time.monotonic()
        worker.stop()
        extra = await q.enqueue("sleep", 0)
    assert time.monotonic() - t0 < 5
    assert (await q.get_job(quick.id)).status == JobStatus.COMPLETED  # type: ignore[union-attr]
    released = await q.get_job(stuck.id)
    assert released.status == JobStatus.WAITING and released.attempts == 0  # type: ignore[union-attr]
    assert (await q.get_job(extra.id)).status == JobStatus.WAITING  # type: ignore[union-attr]


async def test_lease_fencing_rejects_stale_outcome(make_queue: Any) -> None:
    """A worker that lost its lease cannot overwrite the newer attempt's outcome."""
    q = await make_queue()
    job = await q.enqueue("x")
    first = await q.step(StepRequest("w1", "r1", [], 1, 0.2))
    assert [j.id for j in first.jobs] == [job.id]
    stale = first.jobs[0]
    await asyncio.sleep(0.35)
    # reaps the expired lease, then claims again
    second = await q.step(StepRequest("w2", "r2", [], 1, 30.0))
    assert second.recovered == 1 and [j.id for j in second.jobs] == [job.id]
    fresh = second.jobs[0]
    assert fresh.token > stale.token and fresh.attempts == 2
    assert await q.extend_leases("w1", [(job.id, stale.token)], 30.0) == [job.id]
    late_outcome = Outcome(job.id, stale.token, "done", '"stale"')
    late = await q.step(StepRequest("w1", "r3", [late_outcome], 0, 30.0))
    assert late.rejected == [job.id]
    ok_outcome = Outcome(job.id, fresh.token, "done", '"fresh"')
    ok = await q.step(StepRequest("w2", "r4", [ok_outcome], 0, 30.0))
    assert ok.rejected == []
    done = await q.get_job(job.id)
    assert done.status == JobStatus.COMPLETED and done.result == "fresh"  # type: ignore[union-attr]


async def test_job_that_keeps_losing_its_lease_fails_with_lease_expired(make_queue: Any) -> None:
    q = await make_queue()
    job = await q.enqueue("x", max_attempts=2)
    for n in range(2):
        claimed = await q.step(StepRequest("w", f"r{n}", [], 1, 0.1))
        assert [j.id for j in claimed.jobs] == [job.id]
        await asyncio.sleep(0.2)
    res = await q.step(StepRequest("w", "r9", [], 1, 0.1))
    assert res.recovered == 1 and res.jobs == []
    failed = await q.get_job(job.id)
    assert failed.status == JobStatus.FAILED and failed.attempts == 2  # type: ignore[union-attr]
    assert failed.error.message == "lease expired"  # type: ignore[union-attr]


async def test_retention_trims_finished_jobs_and_leaves_no_orphans(make_queue: Any) -> None:
    q = await make_queue(retention=RetentionPolicy(3600, 5, 3600, 2))
    ok = await q.enqueue_many([JobSpec("ok", i) for i in range(20)])
    bad = await q.enqueue_many([JobSpec("bad", i, max_attempts=1) for i in range(6)])

    def fail(job: Job) -> None:
        raise RuntimeError("no")

    async with running(q, {"ok": lambda job: job.payload, "bad": fail}, concurrency=3):
        await wait_until(lambda: _done(q, 26))
        # a later step trims what the last ones added
        await q.enqueue("ok", 99)
        await wait_until(lambda: _done(q, 27))
    counts = await q.counts()
    assert counts["completed"] == 5 and counts["failed"] == 2
    kept = [j async for j in q.dump_jobs()]
    assert len(kept) == 7
    gone = {j.id for j in ok + bad} - {j.id for j in kept}
    for job_id in gone:
        assert await q.get_job(job_id) is None
    if make_queue.backend != "memory":
        k = q.keys
        lengths = [
            await q.client.execute("HLEN", h) for h in (k.state, k.data, k.results, k.errors)
        ]
        assert lengths == [7, 7, 5, 2]  # results of completed jobs, errors of failed ones


async def _done(q: Any, n: int) -> bool:
    c = await q.counts()
    return bool(c["waiting"] == c["active"] == c["delayed"] == 0 and (
        c["completed"] + c["failed"] >= min(n, 7)
    ))  # fmt: skip


async def test_zero_retention_keeps_no_finished_jobs(make_queue: Any) -> None:
    q = await make_queue(retention=RetentionPolicy(0, 0, 0, 0))
    job = await q.enqueue("ok")
    async with running(q, {"ok": lambda job: 1}):
        await wait_until(lambda: _gone(q, job.id))
    assert sum((await q.counts()).values()) == 0


async def _gone(q: Any, job_id: str) -> bool:
    return await q.get_job(job_id) is None


async def test_list_jobs_and_purge(make_queue: Any) -> None:
    q = await make_queue()
    jobs = await q.enqueue_many([JobSpec("ok", i) for i in range(5)])
    async with running(q, {"ok": lambda job: job.payload}, concurrency=1):
        await wait_until(lambda: _done(q, 5))
    listed = await q.list_jobs("completed", 0, 3)
    assert len(listed) == 3
    assert listed[0].finished_at >= listed[-1].finished_at  # newest first
    assert len(await q.list_jobs(JobStatus.COMPLETED, 3, 10)) == 2
    assert await q.purge("completed") == 5
    assert await q.purge("completed") == 0
    for job in jobs:
        assert await q.get_job(job.id) is None


async def test_dump_and_restore_preserve_state(make_queue: Any) -> None:
    src = await make_queue()
    dst = await make_queue()
    failed_job = await src.enqueue("c", max_attempts=1)

    def fail(job: Job) -> None:
        raise KeyError("missing")

    async with running(src, {"c": fail}, concurrency=1):
        await wait_status(src, failed_job.id, "failed")
    await src.enqueue("a", {"n": 1}, priority=3)
    await src.enqueue("b", delay=3600)
    dumped = sorted([j async for j in src.dump_jobs()], key=lambda j: j.name)
    assert [j.status for j in dumped] == ["waiting", "delayed", "failed"]
    for job in dumped:
        assert await dst.restore_job(job) is True
        assert await dst.restore_job(job) is False
    restored = {j.name: j for j in [j async for j in dst.dump_jobs()]}
    assert restored["a"].priority == 3 and restored["a"].payload == {"n": 1}
    assert restored["b"].status == "delayed"
    assert abs(restored["b"].run_at - dumped[1].run_at) < 0.01
    assert restored["c"].attempts == 1 and restored["c"].error.type == "KeyError"
    assert await dst.counts() == await src.counts()


async def test_observer_hooks(make_queue: Any) -> None:
    q = await make_queue()
    events: list[tuple[Any, ...]] = []

    class Obs:
        def on_job_finished(self, queue: str, handler: str, status: str, s: float) -> None:
            events.append(("finished", queue, handler, status))

        def on_retry(self, queue: str, handler: str) -> None:
            events.append(("retry", queue, handler))

        def on_recovered(self, queue: str, count: int) -> None:
            events.append(("recovered", queue, count))

    ok = await q.enqueue("ok")
    bad = await q.enqueue("bad", max_attempts=2, backoff=0.01)

    def fail(job: Job) -> None:
        raise RuntimeError("x")

    async with running(q, {"ok": lambda job: 1, "bad": fail}, observer=Obs()):
        await wait_status(q, ok.id, "completed")
        await wait_status(q, bad.id, "failed")
    assert ("finished", q.name, "ok", "completed") in events
    assert ("retry", q.name, "bad") in events
    assert ("finished", q.name, "bad", "failed") in events


async def test_idle_wait_is_woken_by_enqueue(make_queue: Any) -> None:
    """Idle workers block on the wake-up marker and an enqueue wakes them (no polling)."""
    q = await make_queue()
    await q.step(StepRequest("w", "r1", [], 1, 1.0))  # consume any marker left by setup
    waiter = asyncio.create_task(q.wait_for_jobs("w", 5.0))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await q.enqueue("x")
    assert await asyncio.wait_for(waiter, 4.0) is True


async def test_many_jobs_two_workers_each_job_runs_once(make_queue: Any) -> None:
    q = await make_queue()
    seen: dict[int, int] = {}

    async def rec(job: Job) -> None:
        seen[job.payload] = seen.get(job.payload, 0) + 1

    await q.enqueue_many([JobSpec("rec", i) for i in range(300)])
    async with running(q, {"rec": rec}, concurrency=7), running(q, {"rec": rec}, concurrency=3):
        await wait_until(lambda: _true(len(seen) == 300), timeout=30)
        await q.enqueue_many([JobSpec("rec", i) for i in range(300, 400)])
        await wait_until(lambda: _true(len(seen) == 400), timeout=30)
    assert set(seen.values()) == {1}
