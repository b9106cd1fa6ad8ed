"""How a :class:`~redkeep.queue.worker.Worker` stops: the drain run by
:meth:`~redkeep.queue.worker.Worker.run` once :meth:`~redkeep.queue.worker.Worker.stop` is
called. Prefetched jobs are released, running ones get the grace period, the rest are released
(back to waiting without counting an attempt). Leaving the idle set is in
:mod:`redkeep.queue.worker_handoff`."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from redkeep.queue.executors import Executors
from redkeep.queue.job import Job
from redkeep.queue.protocol import Outcome
from redkeep.queue.worker_state import QueueState, RunningJob

__all__ = ["WorkerStop"]

log = logging.getLogger("redkeep.queue.worker")


class WorkerStop:
    """Mixin for :class:`~redkeep.queue.worker.Worker`."""

    id: str
    grace_period: float
    _running: dict[str, RunningJob]
    _buffer: deque[tuple[QueueState, Job]]
    _drained: bool
    _states: list[QueueState]
    _exec: Executors

    if TYPE_CHECKING:  # provided by Worker

        @property
        def active(self) -> int: ...
        def _add_outcome(self, st: QueueState, outcome: Outcome) -> None: ...

    async def _drain(self) -> None:
        """Release prefetched jobs, wait up to the grace period for running ones (and stuck
        threads), release the rest (back to waiting without counting an attempt)."""
        log.info(
            "worker %s: stopping: %d jobs finishing (grace period %g s), %d prefetched released",
            self.id, self.active, self.grace_period, len(self._buffer),
        )  # fmt: skip
        while self._buffer:
            st, job = self._buffer.popleft()
            self._add_outcome(st, Outcome(job.id, job.token, "release"))
        finishing = [r.task for r in self._running.values()] + self._exec.threads.waiters()
        if finishing:
            await asyncio.wait(finishing, timeout=self.grace_period)
        if self._running:
            log.info("worker %s: grace period over: releasing %d unfinished jobs (%s)",
                     self.id, len(self._running), ", ".join(self._running))  # fmt: skip
            for r in self._running.values():
                r.reason = "release"
                r.task.cancel()
            await asyncio.wait([r.task for r in self._running.values()])
        self._drained = True
        self._exec.threads.warn_left_running(self.id)
        for st in self._states:
            st.event.set()
