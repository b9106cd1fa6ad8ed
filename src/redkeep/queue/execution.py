"""Running one claimed job: handler lookup, timeout, result encoding, failure capture."""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from redkeep.errors import scrub
from redkeep.queue.job import TRACEBACK_LIMIT, Job, JobFailure, encode_value
from redkeep.queue.protocol import Outcome, WorkerQueue

__all__ = ["Handler", "WorkerObserver", "execute_job"]

Handler = Callable[[Job], Any] | Callable[[Job], Awaitable[Any]]


class WorkerObserver(Protocol):
    """Optional hooks called by a worker (e.g. for metrics). Must be cheap and not raise."""

    def on_job_finished(self, queue: str, handler: str, status: str, seconds: float) -> None:
        """A job attempt ended in ``status``: completed, failed or cancelled."""

    def on_retry(self, queue: str, handler: str) -> None:
        """A failed attempt was scheduled for retry."""

    def on_recovered(self, queue: str, count: int) -> None:
        """``count`` jobs whose lease expired were requeued (or failed)."""


def failure_from(exc: BaseException) -> JobFailure:
    """Type, scrubbed message and a bounded, scrubbed traceback of ``exc``."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    tb = scrub(tb)
    if len(tb) > TRACEBACK_LIMIT:
        tb = "...\n" + tb[-TRACEBACK_LIMIT:]
    return JobFailure(type(exc).__name__, scrub(str(exc))[:TRACEBACK_LIMIT], tb)


_ASYNC_CACHE: dict[int, tuple[Callable[..., Any], bool]] = {}


def is_async_handler(handler: Callable[..., Any]) -> bool:
    """True for coroutine functions (also behind functools.partial or an async __call__)."""
    cached = _ASYNC_CACHE.get(id(handler))
    if cached is not None and cached[0] is handler:
        return cached[1]
    result = _is_async(handler)
    if len(_ASYNC_CACHE) < 10_000:
        _ASYNC_CACHE[id(handler)] = (handler, result)
    return result


def _is_async(handler: Callable[..., Any]) -> bool:
    target = getattr(handler, "func", handler)  # functools.partial
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )


async def execute_job(
    queue: WorkerQueue,
    job: Job,
    handlers: Mapping[str, Handler],
    pool: Callable[[], ThreadPoolExecutor],
    max_result_bytes: int,
) -> Outcome:
    """Run ``job``'s handler and say how the attempt ended. Never raises except CancelledError."""
    if job.payload_error is not None:
        # Undecodable payload or corrupted record: retrying cannot help.
        failure = JobFailure("SerializationError", job.payload_error)
        return Outcome(job.id, job.token, "fail", failure.to_json())
    handler = handlers.get(job.name)
    if handler is None:
        failure = JobFailure("JobError", f"no handler for {job.name!r}")
        return Outcome(job.id, job.token, "fail", failure.to_json())
    try:
        if is_async_handler(handler):
            call: Awaitable[Any] = handler(job)
        else:
            call = asyncio.get_running_loop().run_in_executor(pool(), handler, job)
        if job.timeout is not None:
            async with asyncio.timeout(job.timeout):
                result = await call
        else:
            result = await call
        if inspect.isawaitable(result):
            result = await result
        data = encode_value(result, max_result_bytes, "result")
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        failure = failure_from(exc)
        if job.attempts < job.max_attempts:
            delay = queue.backoff_for(job).delay(job.attempts)
            return Outcome(job.id, job.token, "retry", failure.to_json(), delay)
        return Outcome(job.id, job.token, "fail", failure.to_json())
    return Outcome(job.id, job.token, "done", data)
