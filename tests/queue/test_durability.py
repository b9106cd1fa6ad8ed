"""Durability on real Redis: worker crash, paused worker (fencing), redis-server crash + AOF."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from typing import Any

import pytest

from redkeep.errors import BackendError
from redkeep.queue import Job, JobSpec, JobStatus, RedisJobQueue, Worker
from redkeep.queue import worker as worker_module
from redkeep.queue.protocol import StepRequest
from redkeep.redis.mux import MuxClient
from tests.queue.conftest import running, wait_status, wait_until
from tests.support.redis_server import free_port


async def _started(client: MuxClient, prefix: str, job_id: str, attempt: int) -> bool:
    return await client.get(f"{prefix}:started:{job_id}:{attempt}") is not None


async def test_job_of_sigkilled_worker_runs_again_after_lease(
    redis_url: str, prefix: str, spawn_worker: Any
) -> None:
    client = MuxClient(redis_url)
    q = RedisJobQueue(client, "crash", key_prefix=prefix)
    try:
        job = await q.enqueue("work", {"sleep": 60})
        proc = spawn_worker(redis_url, prefix, "crash", 1.0)
        await wait_until(lambda: _started(client, prefix, job.id, 1), timeout=20)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        active = await q.get_job(job.id)
        assert active is not None and active.status == JobStatus.ACTIVE

        async def work(job: Job) -> str:
            return f"rerun after attempt {job.attempts - 1}"

        async with running(q, {"work": work}, lease=5.0):
            done = await wait_status(q, job.id, "completed", timeout=20)
        assert done.result == "rerun after attempt 1" and done.attempts == 2
        assert done.error is not None and done.error.message == "lease expired"
        assert done.started_at - active.started_at >= 1.0 - 0.01  # only after the lease
    finally:
        await client.close()


async def test_paused_workers_late_completion_is_rejected(
    redis_url: str, prefix: str, spawn_worker: Any
) -> None:
    client = MuxClient(redis_url)
    q = RedisJobQueue(client, "fence", key_prefix=prefix)
    try:
        job = await q.enqueue("work", {"sleep": 1.5})
        proc = spawn_worker(redis_url, prefix, "fence", 1.0)
        await wait_until(lambda: _started(client, prefix, job.id, 1), timeout=20)
        os.kill(proc.pid, signal.SIGSTOP)  # frozen: no renewals, handler not running

        async def work(job: Job) -> str:
            return "newer attempt"

        async with running(q, {"work": work}, lease=5.0):
            done = await wait_status(q, job.id, "completed", timeout=20)
        assert done.result == "newer attempt" and done.attempts == 2
        os.kill(proc.pid, signal.SIGCONT)  # the old attempt wakes up and tries to finish
        log_path = proc.log_path

        async def old_attempt_gave_up() -> bool:
            text = log_path.read_text(errors="replace")
            return "stale outcome rejected" in text or "lost its lease" in text

        await wait_until(old_attempt_gave_up, timeout=15)
        final = await q.get_job(job.id)
        assert final is not None and final.result == "newer attempt"
        assert final.status == JobStatus.COMPLETED and final.attempts == 2
    finally:
        await client.close()


@pytest.mark.slow
async def test_every_returned_enqueue_is_processed_across_redis_crash(
    redis_server_factory: Any,
) -> None:
    server = redis_server_factory(appendonly=True, appendfsync="always")
    client = MuxClient(server.url, retry_attempts=2, retry_base_delay=0.05)
    prefix = f"rkt:{uuid.uuid4().hex[:12]}"
    q = RedisJobQueue(client, "restart", key_prefix=prefix)
    processed: set[str] = set()

    async def work(job: Job) -> None:
        processed.add(job.id)

    returned: list[str] = []
    failed = 0
    old_pid = server.pid
    try:
        async with running(q, {"work": work}, concurrency=5, lease=2.0):
            restart: asyncio.Task[Any] | None = None
            for i in range(400):
                if i == 150:
                    restart = asyncio.create_task(asyncio.to_thread(server.restart, graceful=False))
                try:
                    returned.append((await q.enqueue("work", i)).id)
                except BackendError:
                    failed += 1
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.002)
            assert restart is not None
            await restart
            assert server.pid != old_pid
            print(f"enqueues returned: {len(returned)}, failed: {failed}")
            assert len(returned) >= 200

            async def all_done() -> bool:
                replies = await client.pipeline([("HGET", q.keys.state, i) for i in returned])
                return all(str(r).startswith("completed|") for r in replies)

            await wait_until(all_done, timeout=60, interval=0.2)
        assert set(returned) <= processed
    finally:
        await client.close()


async def _idle_workers(client: MuxClient, q: RedisJobQueue) -> int:
    return await client.zcard(q.keys.idle)


async def test_idle_worker_gets_jobs_handed_over_and_deregisters_at_stop(
    redis_url: str, prefix: str
) -> None:
    client = MuxClient(redis_url)
    q = RedisJobQueue(client, "handoff", key_prefix=prefix)
    try:
        async with running(q, {"x": lambda job: job.attempts}) as worker:
            await wait_until(lambda: _is(_idle_workers(client, q), 1))
            job = await q.enqueue("x")
            assert job.status == JobStatus.ACTIVE  # claimed for the idle worker by the enqueue
            done = await wait_status(q, job.id, "completed")
            assert done.result == 1 and done.worker_id == worker.id
        assert await _idle_workers(client, q) == 0
        assert await client.zcard(q.keys.handoff) == 0
        after = await q.enqueue("x")
        assert after.status == JobStatus.WAITING
        assert await client.exists(q.keys.wake(worker.id)) == 0
    finally:
        await client.close()


async def test_handed_over_jobs_reach_the_handler_as_stored(redis_url: str, prefix: str) -> None:
    # A hand-off puts the job in the shared hand-off set as the enqueue script wrote it; the
    # handler must see the same fields as get_job(), for the single and the batch form.
    client = MuxClient(redis_url)
    q = RedisJobQueue(client, "handoff-fields", key_prefix=prefix)
    seen: dict[str, Job] = {}

    async def record(job: Job) -> None:
        seen[job.id] = job

    try:
        async with running(q, {"rec": record}, concurrency=2):
            await wait_until(lambda: _is(_idle_workers(client, q), 1))
            one = await q.enqueue(
                "rec", {"n": [1, "two"]}, priority=7, max_attempts=5, backoff=2.5, timeout=9.0
            )
            assert one.status == JobStatus.ACTIVE
            await wait_status(q, one.id, "completed")
            await wait_until(lambda: _is(_idle_workers(client, q), 1))
            [many] = await q.enqueue_many([JobSpec("rec", "p", priority=-3, timeout=4.0)])
            assert many.status == JobStatus.ACTIVE
            await wait_status(q, many.id, "completed")
        for job in (one, many):
            got, stored = seen[job.id], await q.get_job(job.id)
            assert stored is not None
            for field in ("payload", "priority", "max_attempts", "backoff", "timeout",
                          "created_at", "run_at", "started_at", "worker_id"):  # fmt: skip
                assert getattr(got, field) == getattr(stored, field), field
            assert (got.status, got.attempts, got.token) == (JobStatus.ACTIVE, 1, 1)
    finally:
        await client.close()


async def test_expired_idle_registrations_get_no_jobs(redis_url: str, prefix: str) -> None:
    # A worker that died while registered idle leaves a registration that expires; an enqueue
    # ignores it, the job waits for a live worker, and the next step removes the registration.
    client = MuxClient(redis_url)
    q = RedisJobQueue(client, "handoff-stale", key_prefix=prefix)
    try:
        await q.register()
        await client.zadd(q.keys.idle, {"dead-worker": 1})  # expired long ago (score: ms)
        job = await q.enqueue("x")
        assert job.status == JobStatus.WAITING
        assert await client.zcard(q.keys.handoff) == 0
        await q.step(StepRequest("live", "r1", [], 0, 30.0))
        assert await client.zcard(q.keys.idle) == 0
    finally:
        await client.close()


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_job_handed_to_a_worker_that_died_runs_after_its_lease(
    redis_url: str, prefix: str, spawn_worker: Any
) -> None:
    client = MuxClient(redis_url)
    q = RedisJobQueue(client, "handoff-crash", key_prefix=prefix)
    try:
        proc = spawn_worker(redis_url, prefix, "handoff-crash", 1.0)

        async def freshly_registered() -> bool:
            # kill it while its idle registration (1.5 s) still has >= 1.2 s to run
            entries = await client.zrange(q.keys.idle, 0, 0, withscores=True)
            return bool(entries) and entries[0][1] / 1000 - await client.time() >= 1.2

        await wait_until(freshly_registered, timeout=20, interval=0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        job = await q.enqueue("work", {"sleep": 0})
        assert job.status == JobStatus.ACTIVE  # handed off; the dead worker never pops it

        async with running(q, {"work": lambda job: "recovered"}) as worker:
            done = await wait_status(q, job.id, "completed", timeout=20)
        # the live worker's first step took it from the hand-off set: no lease to wait for
        assert done.result == "recovered" and done.attempts == 1
        assert done.worker_id == worker.id
    finally:
        await client.close()


async def test_stop_with_redis_unreachable_and_nothing_to_report_is_prompt() -> None:
    """A worker whose Redis never answered has only its claim to send: a stop does not wait
    the final flush timeout (10 s) for it, as it does for finished jobs' outcomes."""
    client = MuxClient(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.2, retry_attempts=0)
    q = RedisJobQueue(client, "unreachable", key_prefix=f"rkt:{uuid.uuid4().hex[:12]}")
    worker = Worker(q, {"x": lambda job: None}, handle_signals=False)
    try:
        runner = asyncio.create_task(worker.run())
        await asyncio.sleep(0.5)  # its first step failed and is pending
        assert not runner.done()
        started = asyncio.get_running_loop().time()
        worker.stop()
        await asyncio.wait_for(runner, worker_module.FINAL_FLUSH_TIMEOUT)
        assert asyncio.get_running_loop().time() - started < 5.0
    finally:
        await client.close()


@pytest.mark.slow
async def test_stop_returns_while_redis_is_frozen(
    redis_server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop during an outage still returns; the unreported job runs again after its lease."""
    monkeypatch.setattr(worker_module, "FINAL_FLUSH_TIMEOUT", 2.0)  # 10 s in production
    server = redis_server_factory()
    client = MuxClient(server.url, command_timeout=1.0, retry_attempts=1)
    q = RedisJobQueue(client, "frozen", key_prefix=f"rkt:{uuid.uuid4().hex[:12]}")
    started = asyncio.Event()

    async def work(job: Job) -> str:
        started.set()
        await asyncio.sleep(0.5)
        return "done"

    try:
        job = await q.enqueue("work")
        worker = Worker(q, {"work": work}, lease=2.0, grace_period=2.0, handle_signals=False)
        runner = asyncio.create_task(worker.run())
        await asyncio.wait_for(started.wait(), 10)
        server.pause()  # connections stay open, nothing answers
        worker.stop()
        await asyncio.wait_for(runner, 40)  # bounded: grace + final flush + deregistration
        server.resume()
        async with running(q, {"work": lambda job: "again"}):
            done = await wait_status(q, job.id, "completed", timeout=20)
        assert done.result in ("done", "again")
    finally:
        server.resume()
        await client.close()


async def test_sigterm_releases_the_active_job_without_counting_an_attempt(
    redis_url: str, prefix: str, spawn_worker: Any
) -> None:
    client = MuxClient(redis_url)
    q = RedisJobQueue(client, "sigterm", key_prefix=prefix)
    try:
        job = await q.enqueue("work", {"sleep": 60})
        proc = spawn_worker(redis_url, prefix, "sigterm", 30.0)  # grace period 0
        await wait_until(lambda: _started(client, prefix, job.id, 1), timeout=20)
        os.kill(proc.pid, signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 20) == 0
        released = await q.get_job(job.id)
        assert released is not None and released.status == JobStatus.WAITING
        assert released.attempts == 0
        assert await client.zcard(q.keys.idle) == 0
    finally:
        await client.close()


async def test_queue_names_are_registered(redis_url: str, prefix: str) -> None:
    from redkeep.queue import list_queue_names

    client = MuxClient(redis_url)
    try:
        await RedisJobQueue(client, "alpha", key_prefix=prefix).enqueue("x")
        await RedisJobQueue(client, "beta", key_prefix=prefix).enqueue("x")
        assert await list_queue_names(client, prefix) == ["alpha", "beta"]
    finally:
        await client.close()
