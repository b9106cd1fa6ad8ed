"""Running one claimed job: handler lookup, failure capture and logging, observer reports.

Where the handler runs (event loop, thread, child process) and its timeout are
:mod:`redkeep.queue.executors`' business.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from redkeep.errors import scrub
from redkeep.queue.executors import Executors, HandlerFailed
from redkeep.queue.job import TRACEBACK_LIMIT, Job, JobFailure
from redkeep.queue.progress import enter_job, leave_job
from redkeep.queue.protocol import Outcome, WorkerQueue

__all__ = ["Handler", "WorkerObserver", "execute_job", "failure_from", "report_attempt"]

log = logging.getLogger("redkeep.queue.worker")

Handler = Callable[[Job], Any] | Callable[[Job], Awaitable[Any]]


class WorkerObserver(Protocol):
    """Optional hooks called by a worker (e.g. for metrics). Must be cheap and not raise."""

    def on_job_finished(self, queue: str, handler: str, status: str, seconds: float) -> None:
        """A job attempt ended in ``status``: completed, failed or cancelled."""

    def on_retry(self, queue: str, handler: str) -> None:
        """A failed attempt was scheduled for retry."""

    def on_recovered(self, queue: str, count: int) -> None:
        """``count`` jobs whose lease expired were requeued (or failed)."""

    def on_stuck_thread(self, queue: str, handler: str, delta: int) -> None:
        """A handler thread outlived its attempt (``delta`` 1) or has returned (-1).

        Optional: a worker calls it only on observers that define it.
        """


def failure_from(exc: BaseException) -> JobFailure:
    """Type, scrubbed message and a bounded, scrubbed traceback of ``exc``."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    tb = scrub(tb)
    if len(tb) > TRACEBACK_LIMIT:
        tb = "...\n" + tb[-TRACEBACK_LIMIT:]
    return JobFailure(type(exc).__name__, scrub(str(exc))[:TRACEBACK_LIMIT], tb)


async def execute_job(
    queue: WorkerQueue, job: Job, handlers: Mapping[str, Handler], executors: Executors
) -> Outcome:
    """Run ``job``'s handler and say how the attempt ended. Never raises except CancelledError."""
    if job.payload_error is not None:
        # Undecodable payload or corrupted record: retrying cannot help.
        return _failed(queue, job, JobFailure("SerializationError", job.payload_error), False)
    handler = handlers.get(job.name)
    if handler is None:
        return _failed(queue, job, JobFailure("JobError", f"no handler for {job.name!r}"), False)
    running = enter_job(queue, job)  # for progress reports (redkeep.queue.progress)
    try:
        data = await executors.run(handler, job)
    except asyncio.CancelledError:
        raise
    except HandlerFailed as exc:
        return _failed(queue, job, exc.failure)
    except Exception as exc:
        return _failed(queue, job, failure_from(exc))
    finally:
        leave_job(running)
    return Outcome(job.id, job.token, "done", data)


def _failed(queue: WorkerQueue, job: Job, failure: JobFailure, retry: bool = True) -> Outcome:
    """The outcome of a failed attempt (a retry while attempts are left), logged at WARNING."""
    delay = None
    if retry and job.attempts < job.max_attempts:
        delay = queue.backoff_for(job).delay(job.attempts)
    log.warning(
        "job %s failed (handler %r, queue %s, attempt %d of %d): %s: %s; %s",
        job.id, job.name, job.queue, job.attempts, job.max_attempts, failure.type,
        failure.message[:200], "no retry" if delay is None else f"retry in {delay:.1f} s",
        extra={"job_id": job.id, "handler": job.name, "queue": job.queue,
               "attempt": job.attempts, "error_type": failure.type},
    )  # fmt: skip
    if delay is None:
        return Outcome(job.id, job.token, "fail", failure.to_json())
    return Outcome(job.id, job.token, "retry", failure.to_json(), delay)


def report_attempt(
    observer: WorkerObserver, job: Job, outcome: Outcome | None, reason: str | None, start: float
) -> None:
    """Tell ``observer`` how an attempt that began at ``perf_counter()`` ``start`` ended
    (``outcome`` None: stopped; ``reason`` says why: cancelled, lost or released)."""
    seconds = time.perf_counter() - start
    try:
        if outcome is None:
            if reason == "cancelled":
                observer.on_job_finished(job.queue, job.name, "cancelled", seconds)
        elif outcome.kind == "done":
            observer.on_job_finished(job.queue, job.name, "completed", seconds)
        elif outcome.kind == "retry" and job.attempts < job.max_attempts:
            observer.on_retry(job.queue, job.name)
        elif outcome.kind in ("retry", "fail"):
            observer.on_job_finished(job.queue, job.name, "failed", seconds)
    except Exception:
        log.exception("worker observer failed")
