"""The worker side of :class:`~redkeep.queue.memory.MemoryJobQueue`: one ``step`` applies
outcomes, recovers expired leases, promotes due delayed jobs, trims finished ones by the
retention policy and claims (as step.lua does on Redis); leases, and the waits of idle workers."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from redkeep.queue.job import Job, JobFailure, JobStatus, RetentionPolicy, decode_value
from redkeep.queue.memory_events import EventLog
from redkeep.queue.protocol import Outcome, StepRequest, StepResult

__all__ = ["MemoryStep"]

BATCH = 100
_LEASE_EXPIRED = JobFailure("LeaseExpired", "lease expired")


class MemoryStep:
    """Mixin for :class:`~redkeep.queue.memory.MemoryJobQueue`."""

    retention: RetentionPolicy
    _jobs: dict[str, Job]
    _waiting: list[tuple[int, int, str]]
    _wseq: dict[str, int]
    _delayed: list[tuple[float, str]]
    _active: dict[str, float]
    _finished: dict[JobStatus, OrderedDict[str, float]]
    _event: asyncio.Event
    _steps: dict[str, tuple[str, StepResult]]
    _interrupted: set[str]
    _log: EventLog
    _odd: bool
    _paused: bool
    _children: dict[str, list[str]]
    _gheaps: dict[str, list[tuple[int, int, str]]]
    _gready: dict[str, None]
    _gsleep: dict[str, float]

    if TYPE_CHECKING:  # provided by MemoryJobQueue and its other mixins

        def _push_waiting(self, job: Job, new: bool = False) -> Job: ...
        def _push_delayed(self, job: Job, run_at: float, new: bool = False) -> None: ...
        def _finish(self, job: Job, status: JobStatus, now: float, **changes: Any) -> None: ...
        def _remove(self, job_id: str, status: JobStatus) -> None: ...
        def _outcome_size(self, job_id: str, extra: int) -> None: ...
        def _group_left_active(self, job: Job) -> None: ...
        def _wake_groups(self, now: float) -> None: ...
        def _claim_groups(self, room: int, now: float) -> list[str]: ...
        def _rate_room(self, now: float, want: int) -> int: ...
        def _rate_started(self, now: float, n: int) -> None: ...
        def _rate_wait(self, now: float) -> float: ...
        def _held(self, job_id: str) -> bool: ...
        def _note_removed(self, job_id: str, now: float) -> None: ...
        def _parent_results(self, job: Job) -> dict[str, Any]: ...

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

    # -- claims, leases, delays and retention -----------------------------------------------------
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
