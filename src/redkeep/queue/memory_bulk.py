"""Bulk operations of :class:`~redkeep.queue.memory.MemoryJobQueue`: the ``_bulk`` hook of
:class:`~redkeep.queue.bulk.BulkMixin` (same batches and order as on Redis)."""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING

from redkeep.queue.job import Job, JobStatus

__all__ = ["MemoryBulk"]


class MemoryBulk:
    """Mixin for :class:`~redkeep.queue.memory.MemoryJobQueue`."""

    _jobs: dict[str, Job]
    _finished: dict[JobStatus, OrderedDict[str, float]]

    if TYPE_CHECKING:  # provided by MemoryJobQueue

        async def _list(self, status: JobStatus, offset: int, limit: int) -> list[Job]: ...
        def _unlist(self, job: Job) -> None: ...
        def _push_waiting(self, job: Job, new: bool = False) -> Job: ...
        def _finish(self, job: Job, status: JobStatus, now: float, **changes: object) -> None: ...

    async def _bulk(
        self,
        op: str,
        status: JobStatus,
        name: str | None,
        offset: int,
        scan: int,
        room: int,
        request_id: str,
    ) -> tuple[int, int]:
        # Failed jobs oldest first, as on Redis (_list gives finished ones newest first).
        if status is JobStatus.FAILED:
            ids = itertools.islice(self._finished[status], offset, offset + scan)
            jobs = [self._jobs[i] for i in ids]
        else:
            jobs = await self._list(status, offset, scan)
        changed = looked = 0
        now = time.time()
        for job in jobs:
            if changed >= room:
                break
            looked += 1
            if name is not None and job.name != name:
                continue
            self._unlist(job)
            if op == "retry":
                self._push_waiting(replace(job, attempts=0, finished_at=None))
            else:
                self._finish(job, JobStatus.CANCELLED, now)
            changed += 1
        return changed, looked
