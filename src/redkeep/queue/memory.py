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
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

from redkeep.errors import QueueFull
from redkeep.queue.backoff import Backoff
from redkeep.queue.base import JobQueue, _Prepared, active_refusal
from redkeep.queue.job import (
    FINISHED,
    NO_HEADERS,
    STATUSES,
    Job,
    JobFailure,
    JobStatus,
    RetentionPolicy,
    decode_value,
    encode_value,
)
from redkeep.queue.memory_bulk import MemoryBulk
from redkeep.queue.memory_dedup import MemoryDedup
from redkeep.queue.memory_events import EventLog, MemoryEvents
from redkeep.queue.memory_flows import MemoryFlows
from redkeep.queue.memory_limits import MemoryGroups, MemoryLimits
from redkeep.queue.memory_schedules import MemorySchedules
from redkeep.queue.protocol import Outcome, StepRequest, StepResult
from redkeep.queue.workers import MemoryWorkerRegistry, WorkerRegistry

__all__ = ["DEFAULT_MAX_BYTES", "JOB_OVERHEAD", "MemoryJobQueue"]

BATCH = 100
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
JOB_OVERHEAD = 700
"""Bytes one job costs beyond its encoded payload, result and error (measured)."""
_LEASE_EXPIRED = JobFailure("LeaseExpired", "lease expired")


class MemoryJobQueue(
    MemoryEvents,
    MemorySchedules,
    MemoryLimits,
    MemoryGroups,
    MemoryDedup,
    MemoryBulk,
    MemoryFlows,
    JobQueue,
):
    """A job queue held in memory by this process."""

    backend = "memory"

    def __init__(
        self,
        name: str = "default",
        *,
        max_attempts: int = 3,
        backoff: Backoff | None = None,
        retention: RetentionPolicy | None = None,
        max_payload_bytes: int = 4 * 1024 * 1024,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__(
            name,
            max_attempts=max_attempts,
            backoff=backoff,
            retention=retention,
            max_payload_bytes=max_payload_bytes,
        )
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

    def _pop_waiting(self) -> Job | None:
        while self._waiting:
            _, seq, job_id = heapq.heappop(self._waiting)
            if self._wseq.get(job_id) == seq:
                del self._wseq[job_id]
                return self._jobs[job_id]
        return None

    def _claimable(self, room: int, now: float) -> list[Job]:
        """Up to ``room`` waiting jobs to claim: half ungrouped, half from the groups'
        rotation, the rest from either (like step.lua)."""
        if room <= 0:
            return []
        if not self._gheaps and not self._gsleep:
            return self._pop_many(room)
        self._wake_groups(now)
        self._odd = not self._odd  # an odd one alternates: one-at-a-time claims starve no side
        jobs = self._pop_many((room + self._odd) // 2)
        jobs += [self._jobs[i] for i in self._claim_groups(room - len(jobs), now)]
        return jobs + self._pop_many(room - len(jobs))

    def _pop_many(self, n: int) -> list[Job]:
        jobs: list[Job] = []
        while len(jobs) < n and (job := self._pop_waiting()) is not None:
            jobs.append(job)
        return jobs

    def _runnable(self) -> bool:
        """An ungrouped job waits, or a group in the rotation may start one."""
        while self._waiting and self._wseq.get(self._waiting[0][2]) != self._waiting[0][1]:
            heapq.heappop(self._waiting)
        return bool(self._waiting) or bool(self._gready)

    def _maintain(self, now: float) -> int:
        recovered = 0
        for job_id, expiry in list(self._active.items())[: BATCH * 10]:
            if expiry > now:
                continue
            job = self._jobs[job_id]
            del self._active[job_id]
            self._group_left_active(job)
            recovered += 1
            if job.attempts >= job.max_attempts:
                self._finish(job, JobStatus.FAILED, now, error=_LEASE_EXPIRED)
            else:
                self._push_waiting(replace(job, error=_LEASE_EXPIRED))
        while self._delayed and self._delayed[0][0] <= now:
            run_at, job_id = heapq.heappop(self._delayed)
            due = self._jobs.get(job_id)
            if due is not None and due.status == JobStatus.DELAYED and due.run_at == run_at:
                self._push_waiting(due)
        r = self.retention
        self._trim(JobStatus.COMPLETED, now, r.completed_ttl, r.completed_max)
        self._trim(JobStatus.CANCELLED, now, r.completed_ttl, r.completed_max)
        self._trim(JobStatus.FAILED, now, r.failed_ttl, r.failed_max)
        return recovered

    def _trim(self, status: JobStatus, now: float, ttl: float, max_count: int) -> None:
        ids = self._finished[status]
        for _ in range(len(ids)):
            job_id, finished = next(iter(ids.items()))
            if finished > now - ttl and len(ids) <= max_count:
                break
            ids.popitem(last=False)
            if self._children and self._held(job_id):
                ids[job_id] = now  # a parent of unfinished children: looked at again later
            else:
                self._remove(job_id, status)
                if status == JobStatus.COMPLETED:
                    self._note_removed(job_id, now)

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

    # -- worker protocol -------------------------------------------------------------------------
    async def step(self, request: StepRequest) -> StepResult:
        """Apply outcomes, recover leases, promote due jobs, claim; a request sent again (same
        id) applies nothing and returns the jobs of the first answer still held."""
        last = self._steps.get(request.worker_id)
        if last is not None and last[0] == request.request_id:
            held = [j for j in last[1].jobs if self._holds(j)]
            return replace(last[1], jobs=held)
        result = self._step(request.worker_id, request.outcomes, request.claim, request.lease)
        self._steps[request.worker_id] = (request.request_id, result)
        return result

    def _holds(self, job: Job) -> bool:
        current = self._jobs.get(job.id)
        return (
            current is not None and current.status == JobStatus.ACTIVE
            and current.token == job.token
        )  # fmt: skip

    def _step(
        self, worker_id: str, outcomes: Sequence[Outcome], claim: int, lease: float
    ) -> StepResult:
        now = time.time()
        rejected = []
        for o in outcomes:
            job = self._jobs.get(o.job_id)
            if job is None or job.status != JobStatus.ACTIVE or job.token != o.token:
                rejected.append(o.job_id)
                continue
            del self._active[job.id]
            self._group_left_active(job)
            self._outcome_size(job.id, len(o.data))
            if o.kind == "done":
                self._finish(job, JobStatus.COMPLETED, now, result=decode_value(o.data))
            elif o.kind == "release":
                self._push_waiting(replace(job, attempts=max(0, job.attempts - 1)))
            elif o.kind == "retry" and job.attempts < job.max_attempts:
                error = JobFailure.from_json(o.data)
                self._push_delayed(replace(job, error=error), now + o.delay)
            else:
                self._finish(job, JobStatus.FAILED, now, error=JobFailure.from_json(o.data))
        recovered = self._maintain(now)
        jobs: list[Job] = []
        room = self._rate_room(now, claim) if claim > 0 and not self._paused else 0
        for job in self._claimable(room, now):
            self._log.record(job.id, job.status.value, "active")
            job = replace(job, status=JobStatus.ACTIVE, attempts=job.attempts + 1,
                          token=job.token + 1, started_at=now, worker_id=worker_id)  # fmt: skip
            if job.depends_on:
                job = replace(job, parent_results=self._parent_results(job))
            self._jobs[job.id] = job
            self._active[job.id] = now + lease
            jobs.append(job)
        self._rate_started(now, len(jobs))
        more = self._runnable() and not self._paused
        throttled = None
        if more and room < claim:  # stopped by the rate limit: sleep until the next slot
            more, throttled = False, self._rate_wait(now)
        if more and claim:
            self._event.set()
        next_due = None
        while self._delayed:
            run_at, job_id = self._delayed[0]
            j = self._jobs.get(job_id)
            if j is not None and j.status == JobStatus.DELAYED and j.run_at == run_at:
                next_due = max(0.0, run_at - now)
                break
            heapq.heappop(self._delayed)
        if self._gsleep:  # a group whose rate window has room sooner
            wake = max(0.0, min(self._gsleep.values()) - now)
            next_due = wake if next_due is None else min(next_due, wake)
        if not jobs and self._active:  # the worker waits idle: step again at the first expiry
            expiry = max(0.0, min(self._active.values()) - now)
            next_due = expiry if next_due is None else min(next_due, expiry)
        return StepResult(jobs, next_due, recovered, rejected, more, throttled)

    async def extend_leases(
        self, worker_id: str, held: Sequence[tuple[str, int]], lease: float
    ) -> list[str]:
        expiry = time.time() + lease
        lost = []
        for job_id, token in held:
            job = self._jobs.get(job_id)
            if job is not None and job.status == JobStatus.ACTIVE and job.token == token:
                self._active[job_id] = expiry
            else:
                lost.append(job_id)
        return lost

    async def wait_for_jobs(self, worker_id: str, seconds: float) -> bool | Job:
        if worker_id not in self._interrupted:
            try:
                async with asyncio.timeout(seconds):
                    await self._event.wait()
            except TimeoutError:
                return False
        if worker_id in self._interrupted:
            self._interrupted.discard(worker_id)
            return False
        self._event.clear()
        return True

    async def wake_workers(self) -> None:
        self._event.set()

    async def interrupt_wait(self, worker_id: str) -> None:
        self._interrupted.add(worker_id)
        self._event.set()

    async def worker_stopped(self, worker_id: str) -> None:
        self._steps.pop(worker_id, None)
        self._interrupted.discard(worker_id)

    def worker_registry(self) -> WorkerRegistry:
        """The in-process registry attached to this queue."""
        return MemoryWorkerRegistry([self])
