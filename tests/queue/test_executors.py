"""Where handlers run: sync timeouts and stuck threads, and the process pool for hard timeouts."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from redkeep.monitoring.metrics import Metrics
from redkeep.queue import InvalidJob, Job, JobQueue, RedisJobQueue, Worker, in_process
from redkeep.queue.executors import ThreadRunner
from redkeep.redis.mux import MuxClient
from tests.queue import process_handlers as ph
from tests.queue.conftest import running, wait_status, wait_until


async def _true(value: bool) -> bool:
    return value


def _stuck_gauge(metrics: Metrics, queue: str, handler: str) -> float | None:
    value = metrics.registry.get_sample_value(
        "redkeep_worker_stuck_threads", {"queue": queue, "handler": handler}
    )
    return value


# -- threads ---------------------------------------------------------------------------------
_WHO = contextvars.ContextVar("who", default="nobody")


async def test_a_sync_handler_runs_in_its_callers_context() -> None:
    """Context variables set by the task that runs a job (a trace span, say) reach the handler's
    thread, and what the handler sets does not leak back."""
    runner = ThreadRunner(2, None, lambda: None)

    def handler(job: Job) -> str:
        seen = _WHO.get()
        _WHO.set("handler")
        return seen

    async def run_as(who: str) -> str:
        _WHO.set(who)
        result = await runner.run(handler, Job(id="j", name="h", queue="q"))
        assert _WHO.get() == who
        return str(result)

    try:
        assert await asyncio.gather(run_as("a"), run_as("b")) == ["a", "b"]
    finally:
        runner.shutdown()


async def test_timed_out_thread_keeps_its_slot_and_the_next_job_still_runs(
    make_queue: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13 repro: concurrency 1, a sync job past its timeout, then a quick sync job with a
    timeout shorter than the wait for the slot. The quick job must run, not fail unrun."""
    caplog.set_level(logging.INFO, logger="redkeep.queue")
    q = await make_queue()
    release = threading.Event()
    calls: list[str] = []

    def slow(job: Job) -> str:
        calls.append("slow")
        release.wait(30)
        return "late"

    def quick(job: Job) -> str:
        calls.append("quick")
        return "ok"

    metrics = Metrics()
    slow_job = await q.enqueue("slow", max_attempts=1, timeout=0.3)
    try:
        handlers = {"slow": slow, "quick": quick}
        async with running(q, handlers, concurrency=1, observer=metrics) as worker:
            failed = await wait_status(q, slow_job.id, "failed")
            assert failed.error.type == "TimeoutError"
            assert "0.3 s" in failed.error.message and "thread" in failed.error.message
            assert worker.stuck_threads == 1
            assert _stuck_gauge(metrics, q.name, "slow") == 1.0
            assert any(
                "cannot be killed" in r.getMessage() and slow_job.id in r.getMessage()
                for r in caplog.records
                if r.levelno == logging.WARNING
            )
            quick_job = await q.enqueue("quick", timeout=0.5)
            await asyncio.sleep(1.0)  # twice its timeout, all of it waiting for the slot
            assert calls == ["slow"]
            waiting = await q.get_job(quick_job.id)
            assert waiting is not None and waiting.status in ("waiting", "active")
            release.set()
            done = await wait_status(q, quick_job.id, "completed")
            assert done.result == "ok" and calls == ["slow", "quick"]
            await wait_until(lambda: _true(worker.stuck_threads == 0))
            assert _stuck_gauge(metrics, q.name, "slow") == 0.0
    finally:
        release.set()


async def test_retry_waits_for_the_stuck_thread_of_its_earlier_attempt(make_queue: Any) -> None:
    """A retry claimed by the same worker never overlaps the attempt still running there."""
    q = await make_queue()
    release = threading.Event()
    lock = threading.Lock()
    seen: list[int] = []
    now_running = [0]
    peak = [0]

    def flaky(job: Job) -> int:
        with lock:
            seen.append(job.attempts)
            now_running[0] += 1
            peak[0] = max(peak[0], now_running[0])
        try:
            if job.attempts == 1:
                release.wait(30)
            return job.attempts
        finally:
            with lock:
                now_running[0] -= 1

    job = await q.enqueue("flaky", max_attempts=2, timeout=0.3, backoff=0)
    try:
        async with running(q, {"flaky": flaky}, concurrency=2):

            async def retry_claimed() -> bool:
                got = await q.get_job(job.id)
                return got is not None and got.attempts == 2

            await wait_until(retry_claimed)  # leased to this worker, which has a free slot
            await asyncio.sleep(0.5)
            assert seen == [1]
            release.set()
            done = await wait_status(q, job.id, "completed")
    finally:
        release.set()
    assert done.result == 2 and seen == [1, 2] and peak[0] == 1


async def test_graceful_stop_waits_for_stuck_threads_within_the_grace_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from redkeep.queue import MemoryJobQueue

    caplog.set_level(logging.INFO, logger="redkeep.queue")
    q = MemoryJobQueue("stuck-stop")
    release = threading.Event()

    def slow(job: Job) -> None:
        release.wait(30)

    job = await q.enqueue("slow", max_attempts=1, timeout=0.1)
    worker = Worker(q, {"slow": slow}, grace_period=0.3, handle_signals=False)
    task = asyncio.create_task(worker.run())
    try:
        await wait_status(q, job.id, "failed")
        worker.stop()
        await asyncio.wait_for(task, 10)
        assert worker.stuck_threads == 1
        assert any("still running" in r.getMessage() for r in caplog.records)
    finally:
        release.set()
    await wait_until(lambda: _true(worker.stuck_threads == 0))


# -- processes -------------------------------------------------------------------------------
@pytest.fixture
async def queue(redis_url: str, prefix: str) -> AsyncIterator[JobQueue]:
    client = MuxClient(redis_url)
    try:
        yield RedisJobQueue(client, "procs", key_prefix=prefix)
    finally:
        await client.close()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def _pid_from(path: Path) -> int:
    await wait_until(lambda: _true(path.exists() and path.read_text() != ""), timeout=30)
    return int(path.read_text())


async def test_process_executor_runs_sync_handlers_in_children(queue: JobQueue) -> None:
    handlers: dict[str, Any] = {
        "echo": ph.echo,
        "noisy": ph.noisy,
        "fail": ph.fail,
        "double": in_process(ph.async_double),
        "bad_result": ph.unserializable,
    }
    echo = await queue.enqueue(
        "echo", {"n": [1, 2.5, "x", None, True]}, headers={"traceparent": "00-ab-cd-01"}
    )
    noisy = await queue.enqueue("noisy")
    fail = await queue.enqueue("fail", "p", max_attempts=1)
    double = await queue.enqueue("double", 21)
    bad = await queue.enqueue("bad_result", max_attempts=1)
    async with running(queue, handlers, concurrency=2, executor="process"):
        done = await wait_status(queue, echo.id, "completed", timeout=30)
        assert done.result["payload"] == {"n": [1, 2.5, "x", None, True]}
        assert (done.result["id"], done.result["name"], done.result["queue"]) == (
            echo.id, "echo", "procs",
        )  # fmt: skip
        assert done.result["attempts"] == 1 and done.result["pid"] != os.getpid()
        assert done.result["headers"] == {"traceparent": "00-ab-cd-01"}
        assert (await wait_status(queue, noisy.id, "completed", timeout=30)).result == "quiet"
        assert (await wait_status(queue, double.id, "completed", timeout=30)).result == 42
        failed = await wait_status(queue, fail.id, "failed", timeout=30)
        assert failed.error.type == "ValueError" and failed.error.message == "bad input 'p'"
        assert "process_handlers.py" in failed.error.traceback
        bad_result = await wait_status(queue, bad.id, "failed", timeout=30)
        assert bad_result.error.type == "SerializationError"


async def test_errors_from_a_child_are_scrubbed_of_the_workers_secrets(queue: JobQueue) -> None:
    from redkeep.errors import register_secret

    secret = "child-does-not-know-this-73"
    register_secret(secret)  # as Settings does for the Redis password
    job = await queue.enqueue("fail", secret, max_attempts=1)
    async with running(queue, {"fail": ph.fail}, executor="process"):
        failed = await wait_status(queue, job.id, "failed", timeout=30)
    assert failed.error.type == "ValueError"
    assert secret not in failed.error.message and secret not in failed.error.traceback
    assert "***" in failed.error.message


async def test_process_timeout_kills_the_process_and_a_fresh_one_runs_the_next_job(
    queue: JobQueue, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    hang = await queue.enqueue("hang", {"pid_file": str(pid_file)}, max_attempts=1, timeout=0.5)
    handlers = {"hang": in_process(ph.record_pid_and_hang), "echo": in_process(ph.echo)}
    async with running(queue, handlers, concurrency=1):
        pid = await _pid_from(pid_file)
        failed = await wait_status(queue, hang.id, "failed", timeout=30)
        assert failed.error.type == "TimeoutError"
        assert "0.5 s" in failed.error.message and "killed" in failed.error.message
        assert _gone(pid)
        echo = await queue.enqueue("echo", 1)
        done = await wait_status(queue, echo.id, "completed", timeout=30)
        assert done.result["pid"] not in (pid, os.getpid())


async def test_a_process_that_dies_fails_the_attempt_and_is_replaced(queue: JobQueue) -> None:
    crash = await queue.enqueue("crash", max_attempts=2, backoff=0)
    echo = await queue.enqueue("echo", "after")
    handlers = {"crash": ph.crash, "echo": ph.echo}
    async with running(queue, handlers, concurrency=1, executor="process"):
        failed = await wait_status(queue, crash.id, "failed", timeout=30)
        assert failed.attempts == 2  # retried like any failure
        assert failed.error.type == "ProcessDied"
        assert "exit status 3" in failed.error.message
        done = await wait_status(queue, echo.id, "completed", timeout=30)
        assert done.result["payload"] == "after"


async def test_cancelling_a_process_job_kills_its_process(queue: JobQueue, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    job = await queue.enqueue("hang", {"pid_file": str(pid_file)})
    async with running(queue, {"hang": ph.record_pid_and_hang}, executor="process"):
        pid = await _pid_from(pid_file)
        assert await queue.cancel(job.id)
        await wait_until(lambda: _true(_gone(pid)), timeout=10)


async def test_stop_releases_a_process_job_after_the_grace_period_and_kills_it(
    queue: JobQueue, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    job = await queue.enqueue("hang", {"pid_file": str(pid_file)})
    worker = Worker(
        queue, {"hang": ph.record_pid_and_hang}, executor="process", grace_period=0.2,
        handle_signals=False,
    )  # fmt: skip
    task = asyncio.create_task(worker.run())
    pid = await _pid_from(pid_file)
    worker.stop()
    await asyncio.wait_for(task, 20)
    assert _gone(pid)
    released = await queue.get_job(job.id)
    assert released is not None and released.status == "waiting" and released.attempts == 0


def _nested() -> Any:
    def inner(job: Job) -> None:
        return None

    return inner


@pytest.mark.parametrize(
    ("handler", "reason"),
    [(lambda job: None, "lambda"), (_nested(), "inside a function")],
)
def test_handlers_a_child_cannot_import_are_refused(handler: Any, reason: str) -> None:
    from redkeep.queue import MemoryJobQueue

    q = MemoryJobQueue("refused")
    with pytest.raises(InvalidJob, match=reason):
        Worker(q, {"h": handler}, executor="process")
    with pytest.raises(InvalidJob, match=reason):
        in_process(handler)


def test_async_handlers_stay_on_the_event_loop_with_the_process_executor() -> None:
    from redkeep.queue import MemoryJobQueue

    worker = Worker(
        MemoryJobQueue("mixed"), {"a": ph.async_double, "s": ph.echo}, executor="process"
    )
    assert worker.handlers["a"] is ph.async_double
    assert worker.handlers["s"] == in_process(ph.echo)
    with pytest.raises(InvalidJob, match="executor"):
        Worker(MemoryJobQueue("bad"), {}, executor="fork")  # type: ignore[arg-type]
