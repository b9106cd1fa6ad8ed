"""Bulk operations on a queue: retry every failed job, cancel every waiting job.

Both work through the queue in batches of at most :data:`BULK_BATCH` jobs per backend call
(one Lua script per batch on Redis, never one script over a whole large set), each batch
idempotent by its own request id (a batch re-sent after a lost reply is not applied twice).
Jobs enqueued, claimed or finished while the operation runs may or may not be included.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Callable

from redkeep.errors import InvalidJob
from redkeep.queue.job import MAX_NAME, JobStatus

__all__ = ["BULK_BATCH", "BulkMixin", "Progress"]

BULK_BATCH = 500
"""Jobs looked at per backend call."""

Progress = Callable[[int, int], None]
"""Called after each batch with (jobs changed so far, jobs to look at in all, an estimate)."""


class BulkMixin:
    """``retry_failed`` and ``cancel_waiting`` over a backend's ``_bulk`` hook."""

    async def retry_failed(
        self, name: str | None = None, limit: int | None = None, *, progress: Progress | None = None
    ) -> int:
        """Move failed jobs (only those of handler ``name``, when given; at most ``limit``,
        oldest failures first) back to waiting with their attempts reset; returns how many."""
        return await self._bulk_run("retry", (JobStatus.FAILED,), name, limit, progress)

    async def cancel_waiting(
        self, name: str | None = None, limit: int | None = None, *, progress: Progress | None = None
    ) -> int:
        """Cancel jobs that have not started: waiting and delayed ones (jobs delayed for a retry
        included; only those of handler ``name`` when given; at most ``limit``); returns how
        many. Active jobs are not touched (cancel them one by one with :meth:`cancel`)."""
        statuses = (JobStatus.WAITING, JobStatus.DELAYED)
        return await self._bulk_run("cancel", statuses, name, limit, progress)

    async def _bulk_run(
        self,
        op: str,
        statuses: tuple[JobStatus, ...],
        name: str | None,
        limit: int | None,
        progress: Progress | None,
    ) -> int:
        if name is not None and (not isinstance(name, str) or not 0 < len(name) <= MAX_NAME):
            raise InvalidJob(f"name must be a non-empty str of at most {MAX_NAME} characters")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise InvalidJob("limit must be an int >= 1")
        total = 0
        if progress is not None:
            counts = await self._counts()
            total = sum(counts[s.value] for s in statuses)
            if limit is not None:
                total = min(total, limit)
            progress(0, total)
        done = 0
        for status in statuses:
            offset = 0
            while limit is None or done < limit:
                room = BULK_BATCH if limit is None else min(BULK_BATCH, limit - done)
                scan = BULK_BATCH if name is not None else room
                changed, scanned = await self._bulk(
                    op, status, name, offset, scan, room, os.urandom(12).hex()
                )
                done += changed
                offset += scanned - changed  # the jobs left in place (another handler's)
                if progress is not None:
                    progress(done, max(total, done))
                if scanned < scan:  # the end of the index (or of the limit)
                    break
        return done

    @abstractmethod
    async def _counts(self) -> dict[str, int]: ...

    @abstractmethod
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
        """One batch: look at up to ``scan`` jobs of ``status`` from ``offset`` in its index,
        apply ``op`` (``retry``: failed -> waiting; ``cancel``: -> cancelled) to those of
        handler ``name`` (all when None), at most ``room`` of them; return (changed, looked at).
        Idempotent per ``request_id``."""
