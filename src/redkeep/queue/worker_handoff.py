"""Jobs handed over to a waiting :class:`~redkeep.queue.worker.Worker`: an idle fetch loop's
blocking wait may return a job instead of a wake-up; it is started exactly once, from the wait's
completion or from the loop, whichever sees it first. At stop the worker leaves each queue's idle
set and releases any job handed over meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from redkeep.errors import scrub
from redkeep.queue.job import Job
from redkeep.queue.protocol import Outcome, StepRequest
from redkeep.queue.worker_state import QueueState

__all__ = ["HandOffs"]

log = logging.getLogger("redkeep.queue.worker")


class HandOffs:
    """Mixin for :class:`~redkeep.queue.worker.Worker`."""

    id: str
    _stopping: bool

    if TYPE_CHECKING:  # provided by Worker

        def _max_block(self) -> float: ...
        def _request(self, outcomes: list[Outcome], claim: int, idle: float) -> StepRequest: ...
        def _take(self, st: QueueState, job: Job) -> None: ...
        def _start_next(self) -> None: ...

    def _on_wait_done(self, st: QueueState, task: asyncio.Task[bool | Job]) -> None:
        """Start a handed-over job straight from the wait's completion (saves a loop pass)."""
        if task.cancelled() or task.exception() is not None or self._stopping:
            return
        job = task.result()
        if isinstance(job, Job):
            self._take_handed(st, job)

    def _take_handed(self, st: QueueState, job: Job) -> None:
        """Start a job handed over by a wait exactly once.

        Both the wait's done-callback and :meth:`~redkeep.queue.worker.Worker._idle` see the
        result, in either order: when ``asyncio.wait`` times out in the same loop pass as the pop
        completes, ``_idle`` resumes before the callback runs.
        """
        if job is st.taken:
            return
        st.taken = job
        self._take(st, job)
        self._start_next()

    async def _deregister(self, st: QueueState) -> None:
        """Stop being offered hand-offs and release any job handed over meanwhile. A pending
        blocking wait is interrupted, not cancelled: cancelling the pop could lose the reply
        carrying a handed job."""
        handed: list[Job] = []
        waiter, st.waiter = st.waiter, None
        if waiter is not None:
            if not waiter.done():
                with contextlib.suppress(Exception):
                    await st.queue.interrupt_wait(self.id)
            try:
                result = await asyncio.wait_for(waiter, self._max_block() + 1.0)
                if isinstance(result, Job) and result is not st.taken:
                    handed.append(result)
            except BaseException:  # noqa: S110 - a failed or timed-out wait handed nothing over
                pass
        try:
            handed += (await st.queue.step(self._request([], 0, 0.0))).jobs
            if handed:
                release = [Outcome(j.id, j.token, "release") for j in handed]
                await st.queue.step(self._request(release, 0, 0.0))
            await st.queue.worker_stopped(self.id)
        except Exception as exc:
            log.warning("queue %s: leaving the idle set failed (%s); jobs handed over now wait "
                        "for their lease", st.queue.name, scrub(str(exc)))  # fmt: skip
