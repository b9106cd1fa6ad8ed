"""Progress reports from inside a running handler.

A worker runs each handler with its job in a context variable, so a handler reports progress
without any extra argument::

    from redkeep.queue import progress, progress_sync

    async def resize(job):              # async handler
        for i, image in enumerate(images):
            ...
            await progress(100 * (i + 1) / len(images))

    def export(job):                    # sync handler (runs in a worker thread)
        progress_sync({"rows": 5000, "of": 20000})

A value is a number from 0 to 100 or a small JSON value (at most 4 KB encoded). It is stored
on the job (``Job.progress``) and emitted as a ``progress`` event. The write is fenced by the
attempt's token: once the attempt lost its claim (lease expired, job cancelled) the report is
refused with :class:`~redkeep.errors.LeaseLost`. Handlers run in child processes
(``in_process``) cannot report progress.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redkeep.errors import JobError

if TYPE_CHECKING:
    from redkeep.queue.job import Job
    from redkeep.queue.protocol import WorkerQueue

__all__ = ["current_job", "enter_job", "leave_job", "progress", "progress_sync", "running_job"]


@dataclass(slots=True)
class _Running:
    queue: WorkerQueue
    job: Job
    loop: asyncio.AbstractEventLoop


_CURRENT: contextvars.ContextVar[_Running | None] = contextvars.ContextVar(
    "redkeep_running_job", default=None
)


@contextmanager
def running_job(queue: WorkerQueue, job: Job) -> Iterator[None]:
    """Mark ``job`` of ``queue`` as the job the code inside runs."""
    reset = enter_job(queue, job)
    try:
        yield
    finally:
        _CURRENT.reset(reset)


def enter_job(queue: WorkerQueue, job: Job) -> contextvars.Token[_Running | None]:
    """Mark ``job`` of ``queue`` as the job this task runs until :func:`leave_job` (the
    worker's per-job path: cheaper than the :func:`running_job` context manager)."""
    return _CURRENT.set(_Running(queue, job, asyncio.get_running_loop()))


def leave_job(token: contextvars.Token[_Running | None]) -> None:
    """Undo :func:`enter_job`."""
    _CURRENT.reset(token)


def _running() -> _Running:
    found = _CURRENT.get()
    if found is None:
        raise JobError(
            "progress can only be reported from a handler that a redkeep worker runs (async or "
            "in a worker thread; not in a child process)"
        )
    return found


def current_job() -> Job | None:
    """The job whose handler is running here, or None outside a handler."""
    found = _CURRENT.get()
    return None if found is None else found.job


async def progress(value: Any) -> None:
    """Report the progress of the running job (async handlers). Raises
    :class:`~redkeep.errors.InvalidJob` for a bad value and
    :class:`~redkeep.errors.LeaseLost` when this attempt no longer holds the job."""
    run = _running()
    await _report(run, value)


def progress_sync(value: Any) -> None:
    """Report the progress of the running job from a sync handler's thread; blocks until it
    is stored. Same errors as :func:`progress`."""
    run = _running()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise JobError("progress_sync() called on an event loop: use 'await progress(...)'")
    asyncio.run_coroutine_threadsafe(_report(run, value), run.loop).result()


async def _report(run: _Running, value: Any) -> None:
    report = getattr(run.queue, "report_progress", None)
    if report is None:
        raise JobError(f"queue {run.queue.name!r} does not store progress")
    await report(run.job.id, run.job.token, value)
