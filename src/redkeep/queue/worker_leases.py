"""Lease renewal of a :class:`~redkeep.queue.worker.Worker`: every renew interval, a heartbeat
and the leases of its running and prefetched jobs extended, independently of the handlers. A job
that was cancelled or whose lease was lost has its handler stopped (a prefetched one is dropped)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from redkeep.queue.job import Job
from redkeep.queue.outage import Outage
from redkeep.queue.protocol import WorkerQueue
from redkeep.queue.worker_state import QueueState, RunningJob
from redkeep.queue.workers import WorkerPresence

__all__ = ["LeaseRenewal"]

log = logging.getLogger("redkeep.queue.worker")


class LeaseRenewal:
    """Mixin for :class:`~redkeep.queue.worker.Worker`."""

    id: str
    queues: list[WorkerQueue]
    lease: float
    renew_interval: float
    _running: dict[str, RunningJob]
    _buffer: deque[tuple[QueueState, Job]]
    _outage: Outage
    _presence: WorkerPresence

    if TYPE_CHECKING:  # provided by Worker

        def _room_freed(self, by: QueueState | None = None) -> None: ...

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.renew_interval)
            self._presence.beat()
            for q in self.queues:
                held = [(r.job.id, r.job.token) for r in self._running.values() if r.queue is q]
                held += [(job.id, job.token) for st, job in self._buffer if st.queue is q]
                if not held:
                    continue
                try:
                    lost = await q.extend_leases(self.id, held, self.lease)
                except Exception as exc:
                    self._outage.failed("lease renewal", q.name, exc)
                    continue
                if lost:
                    gone = set(lost)
                    self._buffer = deque((s, j) for s, j in self._buffer if j.id not in gone)
                    self._room_freed()
                for job_id in lost:
                    running = self._running.get(job_id)
                    if running is not None and running.reason is None:
                        job = await q.get_job(job_id)
                        cancelled = job is not None and job.status == "cancelled"
                        running.reason = "cancelled" if cancelled else "lost"
                        log.info("queue %s: job %s %s; stopping its handler", q.name, job_id,
                                 "was cancelled" if cancelled else "lost its lease")  # fmt: skip
                        running.task.cancel()
