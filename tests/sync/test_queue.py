"""The blocking queue: enqueue, enqueue_many, get_job, cancel, retry, counts, list_jobs, purge,
and the enqueue outbox through it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from redkeep.config import Settings
from redkeep.errors import InvalidJob
from redkeep.queue import GroupLimit, Job, JobSpec, JobStatus, RateLimit
from redkeep.services import create_services
from redkeep.sync import SyncServices, create_sync_services
from tests.sync.conftest import make_settings


def run_worker_until(settings: Settings, queue: str, handlers: dict[str, Any], done: Any) -> None:
    """Run an async worker (its own loop and connection, as a worker process would) in a thread
    until ``done()`` (called on the worker's loop: it must not block) is true."""

    async def main() -> None:
        async with create_services(settings) as services:
            worker = services.worker(handlers, queues=[queue], handle_signals=False)
            task = asyncio.create_task(worker.run())
            deadline = time.monotonic() + 10
            while not done():
                assert time.monotonic() < deadline, "worker condition not met"
                await asyncio.sleep(0.02)
            worker.stop()
            await asyncio.wait_for(task, 10)

    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    assert not errors, errors


def test_producer_api(services: SyncServices, sync_settings: Settings) -> None:
    q = services.queue("jobs")
    assert services.queue("jobs") is q
    job = q.enqueue("send", {"to": "a@example.com"}, priority=5)
    assert isinstance(job, Job) and job.status == JobStatus.WAITING
    assert q.enqueue("send", job_id=job.id).id == job.id  # idempotent enqueue
    later = q.enqueue("later", delay=3600)
    many = q.enqueue_many(JobSpec("bulk", i) for i in range(3))
    assert [j.payload for j in many] == [0, 1, 2]
    assert q.get_job(job.id) == q.get_job(job.id)
    assert q.get_job("missing") is None
    counts = q.counts()
    assert counts["waiting"] == 4 and counts["delayed"] == 1
    assert q.list_jobs("waiting")[0].id == job.id  # highest priority first
    assert [j.id for j in q.list_jobs(JobStatus.DELAYED)] == [later.id]
    assert q.cancel(later.id) is True and q.cancel(later.id) is False
    assert q.get_job(later.id).status == JobStatus.CANCELLED  # type: ignore[union-attr]
    assert q.retry(job.id) is False  # not failed
    with pytest.raises(InvalidJob, match="priority"):
        q.enqueue("bad", priority=10**6)
    with pytest.raises(InvalidJob, match="unknown job status"):
        q.list_jobs("nope")
    assert q.purge("cancelled") == 1


def test_retry_of_a_failed_job(services: SyncServices, sync_settings: Settings) -> None:
    q = services.queue("failing")
    job = q.enqueue("explode", max_attempts=1)

    ran = threading.Event()

    def explode(job: Any) -> None:
        ran.set()
        raise RuntimeError("boom")

    run_worker_until(sync_settings, "failing", {"explode": explode}, ran.is_set)
    deadline = time.monotonic() + 10
    while q.get_job(job.id).status != JobStatus.FAILED:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    current = q.get_job(job.id)
    assert current is not None and current.error is not None
    assert current.error.type == "RuntimeError"
    assert q.retry(job.id) is True
    assert q.get_job(job.id).status == JobStatus.WAITING  # type: ignore[union-attr]
    assert q.counts()["failed"] == 0


def test_wait_blocks_until_the_job_is_finished(
    services: SyncServices, sync_settings: Settings
) -> None:
    q = services.queue("awaited")
    job = q.enqueue("double", 21)
    with pytest.raises(TimeoutError):
        q.wait(job.id, timeout=0.2)
    results: list[Job] = []

    def await_it() -> None:
        results.append(q.wait(job.id, timeout=10))

    waiter = threading.Thread(target=await_it)
    waiter.start()
    done = threading.Event()
    thread = threading.Thread(
        target=run_worker_until,
        args=(sync_settings, "awaited", {"double": lambda j: j.payload * 2}, done.is_set),
    )
    thread.start()
    waiter.join(15)
    done.set()
    thread.join(15)
    assert results and results[0].status == JobStatus.COMPLETED and results[0].result == 42


def test_dedup_debounce_and_bulk_operations(services: SyncServices) -> None:
    q = services.queue("sync-dedup")
    first = q.enqueue("x", 1, dedup_key="k", dedup_ttl=60)
    assert q.enqueue("x", 2, dedup_key="k").id == first.id
    bounced = q.enqueue("x", 1, dedup_key="d", debounce=60)
    again = q.enqueue("x", 2, dedup_key="d", debounce=60)
    assert again.id == bounced.id and again.payload == 2
    with pytest.raises(InvalidJob, match="debounce"):
        q.enqueue("x", debounce=1)
    assert q.cancel_waiting(name="x", limit=1) == 1
    assert q.cancel_waiting() == 1
    assert q.retry_failed() == 0
    assert q.counts()["cancelled"] == 2


def test_flow_control(services: SyncServices) -> None:
    q = services.queue("sync-limits")
    q.pause()
    assert q.is_paused() is True
    q.resume()
    assert q.is_paused() is False
    assert q.set_rate_limit(5, 1) == RateLimit(5, 1.0) == q.get_rate_limit()
    assert q.set_rate_limit(None) is None and q.get_rate_limit() is None
    assert q.set_group_limit(concurrency=2) == GroupLimit(2, None) == q.get_group_limit()
    with pytest.raises(InvalidJob, match="concurrency"):
        q.set_group_limit(concurrency=0)
    assert q.set_group_limit() is None
    assert q.enqueue("x", group="tenant-1").group == "tenant-1"


def test_flows(services: SyncServices) -> None:
    q = services.queue("sync-flows")
    parent = q.enqueue("x", 1)
    child = q.enqueue("y", depends_on=[parent.id], on_parent_failure="ignore")
    assert child.status == JobStatus.BLOCKED
    chain = q.chain(JobSpec("a"), JobSpec("b"))
    assert [j.status for j in chain] == [JobStatus.WAITING, JobStatus.BLOCKED]
    group = q.group([JobSpec("a"), JobSpec("a")], then=JobSpec("total"))
    assert group[-1].depends_on == (group[0].id, group[1].id)
    with pytest.raises(InvalidJob, match="unknown job"):
        q.enqueue("y", depends_on=["ghost"])
    assert q.counts()["blocked"] == 3


def test_outbox_holds_blocking_enqueues_during_an_outage_and_relays_them(
    redis_server_factory: Any, prefix: str, tmp_path: Any
) -> None:
    server = redis_server_factory()
    settings = make_settings(redis_url=server.url, key_prefix=prefix,
                             queue_outbox=tmp_path / "outbox.sqlite3")  # fmt: skip
    with create_sync_services(settings) as services:
        q = services.queue("held")
        server.stop()
        jobs = [q.enqueue("send", i) for i in range(3)] + q.enqueue_many(
            JobSpec("send", i) for i in range(3, 5)
        )  # no error reaches the caller: the jobs are held locally
        assert [j.status for j in jobs] == [JobStatus.OUTBOX] * 5
        assert q.get_job(jobs[0].id).status == JobStatus.OUTBOX  # type: ignore[union-attr]
        server.start()
        deadline = time.monotonic() + 20
        while q.counts()["outbox"]:  # each call lets the relay advance on the shared loop
            assert time.monotonic() < deadline, "the held jobs were not relayed"
            time.sleep(0.05)
        assert [j.id for j in q.list_jobs("waiting")] == [j.id for j in jobs]  # in order, same ids
        assert [j.payload for j in q.list_jobs("waiting")] == list(range(5))
