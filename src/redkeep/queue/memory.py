"""In-process job queue with the same API and semantics as the Redis one, minus durability.

Used as the embedded default (no Redis configured) and in tests. Jobs live in this process only;
payloads and results still go through JSON, so they are copies and the same size limit applies.
``max_bytes`` bounds the memory the queue's jobs take (encoded payload, result and error plus
:data:`JOB_OVERHEAD` each): when an enqueue would pass it, the oldest completed and cancelled
jobs are dropped early, and if that is not enough the enqueue fails with
:class:`~redkeep.errors.QueueFull` and adds nothing. Outcomes of running jobs are always
recorded.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Unpack

from redkeep.errors import QueueFull
from redkeep.queue.backoff import Backoff
from redkeep.queue.base import JobQueue, active_refusal
from redkeep.queue.job import (
    FINISHED,
    NO_HEADERS,
    STATUSES,
    Job,
    JobStatus,
    decode_value,
    encode_value,
)
from redkeep.queue.memory_bulk import MemoryBulk
from redkeep.queue.memory_dedup import MemoryDedup
from redkeep.queue.memory_events import EventLog, MemoryEvents
from redkeep.queue.memory_flows import MemoryFlows
from redkeep.queue.memory_limits import MemoryGroups, MemoryLimits
from redkeep.queue.memory_schedules import MemorySchedules
from redkeep.queue.memory_step import MemoryStep
from redkeep.queue.options import QueueOptions, settings_options
from redkeep.queue.prepare import _Prepared
from redkeep.queue.protocol import StepResult
from redkeep.queue.workers import MemoryWorkerRegistry, WorkerRegistry

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["DEFAULT_MAX_BYTES", "JOB_OVERHEAD", "MemoryJobQueue"]

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
JOB_OVERHEAD = 700
"""Bytes one job costs beyond its encoded payload, result and error (measured)."""


class MemoryJobQueue(
    MemoryEvents,
    MemorySchedules,
    MemoryLimits,
    MemoryGroups,
    MemoryDedup,
    MemoryBulk,
    MemoryFlows,
    MemoryStep,
    JobQueue,
):
    """A job queue held in memory by this process."""

    backend = "memory"

    def __init__(
        self,
        name: str = "default",
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        **options: Unpack[QueueOptions],
    ) -> None:
        """``options``: attempts, backoff, retention and payload limit (:class:`QueueOptions`)."""
        super().__init__(name, **options)
        self._jobs: dict[str, Job] = {}
        self._seq = itertools.count(1)
        self._waiting: list[tuple[int, int, str]] = []  # (-priority, seq, id), lazy deletion
        self._wseq: dict[str, int] = {}
        self._delayed: list[tuple[float, str]] = []  # (run_at, id), lazy deletion
        self._active: dict[str, float] = {}  # id -> lease expiry
        self._finished: dict[JobStatus, OrderedDict[str, float]] = {
            s: OrderedDict() for s in FINISHED
        }
        self._event = asyncio.Event()
        self._steps: dict[str, tuple[str, StepResult]] = {}  # worker -> last request, reply
        self._interrupted: set[str] = set()
        self.max_bytes = max_bytes
        self._bytes = 0
        self._sizes: dict[str, tuple[int, int]] = {}  # id -> (job and payload, result or error)
        self._removed: OrderedDict[str, float] = OrderedDict()  # retention's tombstones
        self._log = EventLog()  # job events, waiters, counters (memory_events.py)
        self._dedup: dict[str, tuple[str, float]] = {}  # memory_dedup.py
        self._dedup_exp: list[tuple[float, str]] = []
        self._starts: deque[float] = deque()  # memory_limits.py
        self._init_groups()
        self._odd = False
        self._children: dict[str, list[str]] = {}  # memory_flows.py
        self._deps: dict[str, list[Any]] = {}
        self._settling = False
        self._flow_work: list[tuple[str, JobStatus]] = []
        self._register_flows()

    @classmethod
    def from_settings(cls, name: str, settings: Settings) -> MemoryJobQueue:
        """A queue configured from ``settings`` (attempts, backoff, retention, payload and
        memory limits)."""
        return cls(
            name,
            **settings_options(settings),
            max_bytes=settings.queue_memory_max_bytes,
        )

    # -- byte accounting -------------------------------------------------------------------------
    @property
    def size_bytes(self) -> int:
        """Estimated bytes the jobs of this queue take."""
        return self._bytes

    def _account(self, job_id: str, base: int) -> None:
        self._bytes += base
        self._sizes[job_id] = (base, 0)

    def _outcome_size(self, job_id: str, extra: int) -> None:
        base, old = self._sizes.get(job_id, (JOB_OVERHEAD, 0))
        self._bytes += extra - old
        self._sizes[job_id] = (base, extra)

    def _forget(self, job_id: str) -> None:
        base, extra = self._sizes.pop(job_id, (0, 0))
        self._bytes -= base + extra

    def _make_room(self, needed: int) -> None:
        """Drop the oldest completed and cancelled jobs until ``needed`` more bytes fit."""
        for status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
            ids = self._finished[status]
            while ids and self._bytes + needed > self.max_bytes:
                job_id, _ = ids.popitem(last=False)
                self._remove(job_id, status)
        if self._bytes + needed > self.max_bytes:
            raise QueueFull(self.name, self._bytes + needed, self.max_bytes)

    # -- internal state changes ----------------------------------------------------------------
    def _remove(self, job_id: str, status: JobStatus) -> None:
        """Drop a job's records (retention, purge, delete) with its `removed` event."""
        self._jobs.pop(job_id, None)
        self._forget(job_id)
        self._log.append(job_id, "removed", {"from": status.value})

    def _push_waiting(self, job: Job, new: bool = False) -> Job:
        self._log.record(job.id, "" if new else job.status.value, "waiting")
        seq = next(self._seq)
        self._wseq[job.id] = seq
        job = replace(job, status=JobStatus.WAITING)
        self._jobs[job.id] = job
        if job.group is None:
            heapq.heappush(self._waiting, (-job.priority, seq, job.id))
        else:
            self._group_push(job, seq)
        self._event.set()
        return job

    def _push_delayed(self, job: Job, run_at: float, new: bool = False) -> None:
        self._log.record(job.id, "" if new else job.status.value, "delayed")
        job = replace(job, status=JobStatus.DELAYED, run_at=run_at)
        self._jobs[job.id] = job
        heapq.heappush(self._delayed, (run_at, job.id))
        self._event.set()

    def _finish(self, job: Job, status: JobStatus, now: float, **changes: Any) -> None:
        self._jobs[job.id] = replace(job, status=status, finished_at=now, **changes)
        self._finished[status][job.id] = now
        self._log.record(job.id, job.status.value, status.value)
        if self._children or self._settling:
            self._settle_flows(job.id, status, now)

    def _unlist(self, job: Job) -> None:
        """Remove ``job`` from the structure of its current status."""
        if job.status == JobStatus.WAITING:
            self._wseq.pop(job.id, None)
        elif job.status == JobStatus.ACTIVE:
            if self._active.pop(job.id, None) is not None:
                self._group_left_active(job)
        elif job.status in FINISHED:
            self._finished[job.status].pop(job.id, None)
        # delayed: lazily skipped, its status no longer matches

    # -- hooks ---------------------------------------------------------------------------------
    @staticmethod
    def _job_size(p: _Prepared) -> int:
        return (
            JOB_OVERHEAD
            + len(p.id)
            + len(p.name)
            + len(p.payload)
            + len(p.backoff)
            + len(p.headers)
        )

    async def _enqueue(self, prepared: list[_Prepared]) -> list[Job]:
        now = time.time()
        sizes = {p.id: self._job_size(p) for p in prepared if p.id not in self._jobs}
        self._make_room(sum(sizes.values()))  # all or nothing
        out = []
        for p in prepared:
            existing = self._jobs.get(p.id)
            if existing is None and p.dedup:
                existing = self._dedup_find(p, now)
            if existing is not None:
                out.append(existing)
                continue
            self._account(p.id, sizes[p.id])
            due = max(now + p.delay_ms / 1000.0, p.run_at_ms / 1000.0)
            job = Job(
                id=p.id,
                name=p.name,
                queue=self.name,
                payload=decode_value(p.payload),
                priority=p.priority,
                max_attempts=p.max_attempts,
                created_at=now,
                run_at=due,
                timeout=p.timeout,
                backoff=Backoff.from_list(decode_value(p.backoff)) if p.backoff else None,
                headers=decode_value(p.headers) if p.headers else NO_HEADERS,
                dedup_key=p.dedup or None,
                group=p.group or None,
            )
            if due > now:
                self._push_delayed(job, due, new=True)
                job = self._jobs[job.id]
            else:
                job = self._push_waiting(job, new=True)
            if p.dedup:
                self._dedup_put(p, now)
            out.append(job)
        return out

    async def _get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    async def _cancel(self, job_id: str, request_id: str) -> bool:
        job = self._jobs.get(job_id)
        if job is None or job.status in FINISHED:
            return False
        self._unlist(job)
        self._finish(job, JobStatus.CANCELLED, time.time())
        return True

    async def _retry(self, job_id: str, request_id: str) -> bool:
        job = self._jobs.get(job_id)
        if job is None or job.status != JobStatus.FAILED:
            return False
        self._unlist(job)
        self._push_waiting(replace(job, attempts=0, finished_at=None))
        return True

    async def _delete(self, job_id: str, request_id: str) -> bool:
        job = self._jobs.get(job_id)
        if job is None:
            return False
        if job.status == JobStatus.ACTIVE:
            raise active_refusal(job_id)
        self._unlist(job)  # a delayed one stays in its heap until due, then is skipped
        self._remove(job_id, job.status)
        if self._children or self._deps:
            self._flow_deleted(job)
        return True

    async def _counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for job in self._jobs.values():
            counts[job.status.value] += 1
        return counts

    async def _list(self, status: JobStatus, offset: int, limit: int) -> list[Job]:
        if status == JobStatus.WAITING:
            order = sorted((-j.priority, self._wseq[i], i) for i, j in self._jobs.items()
                           if j.status == status and i in self._wseq)  # fmt: skip
            ids = [i for _, _, i in order]
        elif status == JobStatus.DELAYED:
            ids = [j.id for j in sorted(
                (j for j in self._jobs.values() if j.status == status),
                key=lambda j: j.run_at or 0.0)]  # fmt: skip
        elif status == JobStatus.ACTIVE:
            ids = sorted(self._active, key=self._active.__getitem__)
        elif status == JobStatus.BLOCKED:
            ids = [j.id for j in self._jobs.values() if j.status == status]  # in creation order
        else:
            ids = list(reversed(self._finished[status]))
        return [self._jobs[i] for i in ids[offset : offset + limit]]

    async def _purge(self, status: JobStatus) -> int:
        ids = self._finished[status]
        n = len(ids)
        for job_id in ids:
            self._remove(job_id, status)
        ids.clear()
        return n

    async def dump_jobs(self) -> AsyncIterator[Job]:
        """Every job (a snapshot taken when iteration starts)."""
        for job in list(self._jobs.values()):
            yield job

    async def _restore(self, job: Job, request_id: str) -> bool:
        if job.id in self._jobs:
            return False
        text = encode_value(job.payload, self.max_payload_bytes)
        size = JOB_OVERHEAD + len(job.id) + len(job.name) + len(text)
        self._make_room(size)
        self._account(job.id, size)
        if job.result is not None:
            self._outcome_size(job.id, len(encode_value(job.result, 2**62, "result")))
        now = time.time()
        status = JobStatus(job.status)
        if status == JobStatus.WAITING:
            self._push_waiting(job, new=True)
        elif status == JobStatus.DELAYED:
            self._push_delayed(job, job.run_at or now, new=True)
        elif status == JobStatus.ACTIVE:
            self._log.record(job.id, "", status.value)
            self._jobs[job.id] = job
            self._active[job.id] = now  # lease already expired: the next step requeues it
            if job.group is not None:
                self._gactive[job.group] = self._gactive.get(job.group, 0) + 1
        else:
            self._log.record(job.id, "", status.value)
            self._jobs[job.id] = job
            self._finished[status][job.id] = job.finished_at or now
        return True

    def worker_registry(self) -> WorkerRegistry:
        """The in-process registry attached to this queue."""
        return MemoryWorkerRegistry([self])
