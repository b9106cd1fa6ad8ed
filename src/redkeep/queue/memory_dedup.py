"""Deduplication and debounce for :class:`~redkeep.queue.memory.MemoryJobQueue` (the same
rules as ``scripts/lib/dedup.lua``, see :mod:`redkeep.queue.dedup`)."""

from __future__ import annotations

import heapq
from dataclasses import replace
from typing import TYPE_CHECKING

from redkeep.queue.backoff import Backoff
from redkeep.queue.job import FINISHED, NO_HEADERS, Job, JobStatus, decode_value

if TYPE_CHECKING:
    from redkeep.queue.memory_events import EventLog
    from redkeep.queue.prepare import _Prepared

__all__ = ["MemoryDedup"]

_TRIM = 20
_RECHECK = 60.0


class MemoryDedup:
    """Mixin for :class:`~redkeep.queue.memory.MemoryJobQueue`: dedup key -> (job id, expiry)."""

    _jobs: dict[str, Job]
    _delayed: list[tuple[float, str]]
    _log: EventLog
    _dedup: dict[str, tuple[str, float]]
    """dedup key -> (job id, expiry)"""
    _dedup_exp: list[tuple[float, str]]
    """heap of (expiry, dedup key)"""

    if TYPE_CHECKING:  # provided by MemoryJobQueue

        def _unlist(self, job: Job) -> None: ...
        def _push_delayed(self, job: Job, run_at: float, new: bool = False) -> None: ...

    def _dedup_find(self, p: _Prepared, now: float) -> Job | None:
        """The job that the enqueue ``p`` (which has a dedup key) returns instead of adding
        one (debounced first when ``p`` debounces), or None: add ``p``."""
        entry = self._dedup.get(p.dedup)
        if entry is None:
            return None
        job = self._jobs.get(entry[0])
        if job is None or (job.status in FINISHED and entry[1] <= now):
            return None
        if not p.debounce_ms:
            return job
        if job.attempts or job.status not in (JobStatus.WAITING, JobStatus.DELAYED):
            return None  # it started: a new job
        due = now + p.debounce_ms / 1000.0
        from_status = job.status.value
        self._unlist(job)
        job = replace(
            job,
            name=p.name,
            payload=decode_value(p.payload),
            priority=p.priority,
            max_attempts=p.max_attempts,
            timeout=p.timeout,
            backoff=Backoff.from_list(decode_value(p.backoff)) if p.backoff else None,
            headers=decode_value(p.headers) if p.headers else NO_HEADERS,
        )
        if job.status == JobStatus.WAITING:  # promoted, not claimed yet: delayed again
            self._push_delayed(job, due)
        else:
            self._jobs[job.id] = job = replace(job, run_at=due)
            heapq.heappush(self._delayed, (due, job.id))
        self._log.append(job.id, "debounced", {"from": from_status})
        return self._jobs[job.id]

    def _dedup_put(self, p: _Prepared, now: float) -> None:
        """Point the dedup key of ``p`` at its new job; drop a few expired entries."""
        entries, expiries = self._dedup, self._dedup_exp
        expiry = now + p.dedup_ttl_ms / 1000.0
        entries[p.dedup] = (p.id, expiry)
        heapq.heappush(expiries, (expiry, p.dedup))
        for _ in range(_TRIM):
            if not expiries or expiries[0][0] >= now:
                break
            _, key = heapq.heappop(expiries)
            entry = entries.get(key)
            if entry is None or entry[1] >= now:
                continue  # replaced since: its own heap item stays
            job = self._jobs.get(entry[0])
            if job is not None and job.status not in FINISHED:
                heapq.heappush(expiries, (now + _RECHECK, key))
            else:
                del entries[key]
