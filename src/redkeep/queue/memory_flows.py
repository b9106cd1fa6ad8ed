"""Flows of :class:`~redkeep.queue.memory.MemoryJobQueue` (see :mod:`redkeep.queue.flows`),
with the same rules as the Redis backend's ``flow.lua`` and ``scripts/lib/flows.lua``."""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from redkeep.errors import InvalidJob
from redkeep.queue.backoff import Backoff
from redkeep.queue.flows import proxy_id
from redkeep.queue.job import (
    FINISHED,
    NO_HEADERS,
    Job,
    JobFailure,
    JobStatus,
    decode_value,
)

if TYPE_CHECKING:
    from redkeep.queue.memory import MemoryJobQueue
    from redkeep.queue.memory_events import EventLog
    from redkeep.queue.prepare import _Prepared

__all__ = ["MemoryFlows"]

_QUEUES: weakref.WeakValueDictionary[str, MemoryFlows] = weakref.WeakValueDictionary()
"""The memory queues of this process by name (the last one made with a name wins): a flow's
parents and children in different memory queues find each other here."""
_PROXY_REF = "\x1f"


JOB_PROXY_SIZE = 700
"""Bytes a proxy job counts for (no payload)."""
REMOVED_MAX = 100_000
"""Tombstones of completed jobs removed by retention kept (as ``lib/maintain.lua``) ..."""
REMOVED_TTL = 7 * 86400.0
"""... for at most this many seconds."""


def parent_failure(parent: str, how: str) -> JobFailure:
    """The failure of a child whose parent ``parent`` ended ``how`` (failed or cancelled)."""
    return JobFailure("ParentFailed", f"parent job {parent} {how}")


class MemoryFlows:
    """Mixin for :class:`~redkeep.queue.memory.MemoryJobQueue`."""

    _children: dict[str, list[str]]
    """Parent id -> ids of its children."""
    _deps: dict[str, list[Any]]
    """Blocked job id -> [unfinished parents, on_parent_failure]."""
    _settling: bool
    _flow_work: list[tuple[str, JobStatus]]
    _removed: OrderedDict[str, float]
    """Id of a completed job removed by retention -> when (its tombstone)."""

    if TYPE_CHECKING:  # provided by MemoryJobQueue
        name: str
        _jobs: dict[str, Job]
        _log: EventLog
        _finished: dict[JobStatus, OrderedDict[str, float]]

        def _make_room(self, needed: int) -> None: ...
        def _account(self, job_id: str, base: int) -> None: ...
        def _push_waiting(self, job: Job, new: bool = False) -> Job: ...
        def _push_delayed(self, job: Job, run_at: float, new: bool = False) -> None: ...
        def _finish(self, job: Job, status: JobStatus, now: float, **changes: Any) -> None: ...
        def _job_size(self, p: _Prepared) -> int: ...

    def _note_removed(self, job_id: str, now: float) -> None:
        """Completed job ``job_id`` was removed by retention: keep its tombstone (the newest
        REMOVED_MAX, for at most REMOVED_TTL seconds), so that it still counts as a completed
        parent (result None)."""
        self._removed[job_id] = now
        self._removed.move_to_end(job_id)
        gone = self._removed
        while len(gone) > REMOVED_MAX or next(iter(gone.values())) < now - REMOVED_TTL:
            gone.popitem(last=False)

    def _parent(self, job_id: str) -> Job | None:
        """The job ``job_id``; for a completed one removed by retention since, a stand-in of
        status completed without result; None when unknown."""
        job = self._jobs.get(job_id)
        if job is None and job_id in self._removed:
            job = Job(id=job_id, name="", queue=self.name, status=JobStatus.COMPLETED)
        return job

    def _register_flows(self) -> None:
        _QUEUES[self.name] = self

    def sibling(self, name: str) -> MemoryJobQueue:
        """The memory queue ``name`` of this process (made when there is none)."""
        from redkeep.queue.memory import MemoryJobQueue

        found = self if name == self.name else _QUEUES.get(name)
        if isinstance(found, MemoryJobQueue):
            return found
        return MemoryJobQueue(name)

    def _make_proxies(self, prepared: list[_Prepared], now: float) -> None:
        """A proxy here for each parent of another queue, linked to it (or finished, as the
        parent is); InvalidJob, before anything is written, for an unknown parent."""
        parents: dict[tuple[str, str], Job] = {}
        for p in prepared:
            for queue, job_id in p.foreign:
                other = _QUEUES.get(queue)
                parent = other._parent(job_id) if other is not None else None
                if parent is None:
                    raise InvalidJob(f"job {p.id} depends on unknown job {job_id} of queue {queue}")
                parents[(queue, job_id)] = parent
        for (queue, job_id), parent in parents.items():
            pid = proxy_id(queue, job_id)
            if pid in self._jobs:
                continue
            proxy = Job(id=pid, name="redkeep.parent", queue=self.name, max_attempts=1,
                        created_at=now, run_at=now)  # fmt: skip
            self._account(pid, JOB_PROXY_SIZE)
            self._log.record(pid, "", "blocked")
            self._jobs[pid] = replace(proxy, status=JobStatus.BLOCKED)
            if parent.status in FINISHED:
                self._flow_relay(queue, job_id, parent)
            else:
                links = _QUEUES[queue]._children.setdefault(job_id, [])
                if _PROXY_REF + self.name not in links:
                    links.append(_PROXY_REF + self.name)

    def _flow_relay(self, queue: str, job_id: str, parent: Job) -> None:
        """Parent ``job_id`` of ``queue`` finished as ``parent`` says: its proxy here takes its
        result or error and status (its children follow)."""
        proxy = self._jobs.get(proxy_id(queue, job_id))
        if proxy is None or proxy.status != JobStatus.BLOCKED:
            return
        self._finish(proxy, JobStatus(parent.status), time.time(), result=parent.result,
                     error=parent.error)  # fmt: skip

    async def _enqueue_flow(self, prepared: list[_Prepared]) -> list[Job]:
        known: set[str] = set()
        for p in prepared:
            if p.id not in self._jobs and p.id not in known:
                for parent in p.parents:
                    foreign = "/" in parent and any(proxy_id(*f) == parent for f in p.foreign)
                    if parent not in known and self._parent(parent) is None and not foreign:
                        raise InvalidJob(
                            f"job {p.id} depends on unknown job {parent} (parents must exist or "
                            "come earlier in the same call)"
                        )
            known.add(p.id)
        sizes = {p.id: self._job_size(p) for p in prepared if p.id not in self._jobs}
        self._make_room(sum(sizes.values()))  # all or nothing
        now = time.time()
        if any(p.foreign for p in prepared):
            self._make_proxies(prepared, now)
        out = []
        for p in prepared:
            existing = self._jobs.get(p.id)
            if existing is None:
                self._account(p.id, sizes[p.id])
                existing = self._flow_job(p, now)
            out.append(existing)
        return out

    def _flow_job(self, p: _Prepared, now: float) -> Job:
        due = max(now + p.delay_ms / 1000.0, p.run_at_ms / 1000.0)
        job = Job(
            id=p.id, name=p.name, queue=self.name, payload=decode_value(p.payload),
            priority=p.priority, max_attempts=p.max_attempts, created_at=now, run_at=due,
            timeout=p.timeout,
            backoff=Backoff.from_list(decode_value(p.backoff)) if p.backoff else None,
            headers=decode_value(p.headers) if p.headers else NO_HEADERS,
            depends_on=p.parents, on_parent_failure=p.on_parent_failure or None,
        )  # fmt: skip
        mode = p.on_parent_failure
        pending: list[str] = []
        for parent in p.parents:
            found = self._parent(parent)
            status = found.status if found is not None else JobStatus.COMPLETED
            if status in (JobStatus.FAILED, JobStatus.CANCELLED) and mode != "ignore":
                self._log.record(p.id, "", "waiting")
                self._jobs[p.id] = job
                if mode == "cancel":
                    self._finish(job, JobStatus.CANCELLED, now)
                else:
                    error = parent_failure(parent, status.value)
                    self._finish(job, JobStatus.FAILED, now, error=error)
                return self._jobs[p.id]
            if status not in FINISHED:
                pending.append(parent)
        if pending:
            self._log.record(p.id, "", "blocked")
            job = self._jobs[p.id] = replace(job, status=JobStatus.BLOCKED)
            self._deps[p.id] = [len(pending), mode]
            for parent in pending:
                self._children.setdefault(parent, []).append(p.id)
            return job
        return self._flow_release(job, now, new=True)

    def _flow_release(self, job: Job, now: float, new: bool = False) -> Job:
        if job.run_at is not None and job.run_at > now:
            self._push_delayed(job, job.run_at, new=new)
            return self._jobs[job.id]
        return self._push_waiting(job, new=new)

    def _settle_flows(self, job_id: str, status: JobStatus, now: float) -> None:
        """Release, fail or cancel the children of ``job_id``, which just ended as ``status``
        (and theirs, down the flow: a work list, not recursion; a job finished while the list
        is worked off, here or by a relay from another queue, joins it)."""
        self._flow_work.append((job_id, status))
        if self._settling:
            return
        self._settling = True
        try:
            while self._flow_work:
                parent, how = self._flow_work.pop()
                self._settle_one(parent, how, now)
        finally:
            self._settling = False

    def _settle_one(self, parent: str, how: JobStatus, now: float) -> None:
        self._deps.pop(parent, None)
        for kid in self._children.get(parent, ()):
            if kid.startswith(_PROXY_REF):
                other = _QUEUES.get(kid[1:])
                if other is not None:
                    other._flow_relay(self.name, parent, self._jobs[parent])
                continue
            dep = self._deps.get(kid)
            child = self._jobs.get(kid)
            if dep is None or child is None or child.status != JobStatus.BLOCKED:
                continue
            if how == JobStatus.COMPLETED or dep[1] == "ignore":
                dep[0] -= 1
                if dep[0] <= 0:
                    del self._deps[kid]
                    self._flow_release(child, now)
                continue
            del self._deps[kid]
            if dep[1] == "cancel":
                self._finish(child, JobStatus.CANCELLED, now)
            else:
                self._finish(child, JobStatus.FAILED, now, error=parent_failure(parent, how.value))

    def _flow_deleted(self, job: Job) -> None:
        """``job`` was deleted: a parent that had not finished counts as cancelled for its
        children; its counters and children list go."""
        self._deps.pop(job.id, None)
        if job.status not in FINISHED and job.id in self._children:
            self._settle_flows(job.id, JobStatus.CANCELLED, time.time())
        self._children.pop(job.id, None)

    def _held(self, job_id: str) -> bool:
        """True while ``job_id`` has an unfinished child (retention keeps it); a parent that is
        not held forgets its children."""
        kids = self._children.get(job_id)
        if kids is None:
            return False
        for kid in kids:
            child = self._jobs.get(kid)
            if child is not None and child.status not in FINISHED:
                return True
        del self._children[job_id]
        return False

    def _parent_results(self, job: Job) -> dict[str, Any]:
        found = {p: self._jobs.get(p) for p in job.depends_on}
        return {p: (j.result if j is not None else None) for p, j in found.items()}
