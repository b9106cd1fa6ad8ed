"""The backend-neutral :class:`JobQueue` base class.

Public methods validate input and encode payloads here (a job's, with
:func:`~redkeep.queue.prepare.prepare`; the options shared by every backend's constructor are in
:mod:`redkeep.queue.options`); backends (Redis, memory) implement the
``_``-prefixed hooks and the worker protocol (:class:`~redkeep.queue.protocol.WorkerQueue`:
``step``, ``extend_leases``, ``wait_for_jobs``...), through which a worker drives a queue. The
job model is in :mod:`redkeep.queue.job`.

With an enqueue outbox attached (:attr:`JobQueue.outbox`, see :mod:`redkeep.queue.outbox`),
validated jobs go through the outbox, which sends them with ``_enqueue``/``_enqueue_one`` or
holds them locally while Redis is unreachable; reads answer for held jobs too.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from redkeep.errors import InvalidJob, JobError
from redkeep.queue.backoff import Backoff
from redkeep.queue.bulk import BulkMixin
from redkeep.queue.events import EventsMixin
from redkeep.queue.flows import FlowsMixin
from redkeep.queue.job import (
    FINISHED,
    MAX_NAME,
    MAX_PRIORITY,
    NO_HEADERS,
    STATUSES,
    Job,
    JobSpec,
    JobStatus,
    RetentionPolicy,
    check_headers,
    encode_value,
    new_job_id,
)
from redkeep.queue.limits import FlowControlMixin
from redkeep.queue.prepare import _Prepared, prepare
from redkeep.queue.protocol import StepRequest, StepResult
from redkeep.queue.schedules import SchedulesMixin

if TYPE_CHECKING:
    from redkeep.queue.outbox import Outbox
    from redkeep.queue.workers import WorkerRegistry

__all__ = ["JobQueue"]


class JobQueue(EventsMixin, SchedulesMixin, FlowControlMixin, BulkMixin, FlowsMixin, ABC):
    """A named, async job queue. See docs/queue.md for the guarantees.

    Implements :class:`~redkeep.queue.protocol.WorkerQueue`, the worker's side of a queue.
    Events, ``wait``, progress and counters: :class:`~redkeep.queue.events.EventsMixin`;
    schedules: :class:`~redkeep.queue.schedules.SchedulesMixin`; pause and resume:
    :class:`~redkeep.queue.limits.FlowControlMixin`; bulk retry/cancel:
    :class:`~redkeep.queue.bulk.BulkMixin`; dependencies, chains and groups:
    :class:`~redkeep.queue.flows.FlowsMixin`.
    """

    backend: str = "abstract"
    outbox: Outbox | None = None
    """The enqueue outbox holding this queue's jobs while Redis is unreachable, or None (set by
    :meth:`redkeep.queue.outbox.Outbox.attach`)."""

    def __init__(
        self,
        name: str,
        *,
        max_attempts: int = 3,
        backoff: Backoff | None = None,
        retention: RetentionPolicy | None = None,
        max_payload_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        from redkeep.queue.keys import validate_queue_name

        try:
            self.name = validate_queue_name(name)
        except ValueError as exc:
            raise InvalidJob(str(exc)) from None
        if max_attempts < 1:
            raise InvalidJob("max_attempts must be >= 1")
        self.default_max_attempts = max_attempts
        self.default_backoff = backoff or Backoff()
        self.retention = retention or RetentionPolicy()
        self.max_payload_bytes = max_payload_bytes

    # -- public API ----------------------------------------------------------------------------
    async def enqueue(
        self,
        name: str,
        payload: Any = None,
        *,
        job_id: str | None = None,
        priority: int = 0,
        delay: float | None = None,
        run_at: float | None = None,
        max_attempts: int | None = None,
        backoff: Backoff | float | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the job's timeout, not this call's
        headers: Mapping[str, str] | None = None,
        dedup_key: str | None = None,
        dedup_ttl: float | None = None,
        debounce: float | None = None,
        group: str | None = None,
        depends_on: Sequence[str | Job | tuple[str, str]] | None = None,
        on_parent_failure: str = "fail",
    ) -> Job:
        """Add a job; with ``job_id``, return the existing job instead when that id exists.

        With ``group`` (a name like a queue's, e.g. ``"tenant-42"``), the job is scheduled fairly
        among the queue's groups (round-robin) and counts against the group limit
        (:meth:`set_group_limit`); priority orders the jobs of one group.

        With ``dedup_key``, while a job enqueued with that key is unfinished (or for
        ``dedup_ttl`` seconds after it was enqueued, if given), this returns that job and adds
        nothing. With ``debounce`` (seconds, needs ``dedup_key``), the job starts ``debounce``
        seconds from now, and an enqueue with the key before it started replaces its payload
        and pushes its start to now + ``debounce``: only the last one runs. See docs/queue.md.

        With ``depends_on`` (ids of jobs of this queue, or ``Job`` objects / ``(queue, id)``
        pairs for jobs of other queues of the same Redis and key prefix), the job is
        ``blocked`` until every parent has completed, then runs with ``Job.parent_results``;
        ``on_parent_failure`` (``fail``, ``cancel`` or ``ignore``) says what a failed or
        cancelled parent does to it. See docs/flows.md.

        ``headers`` are string metadata stored with the job and read back with it
        (``Job.headers``), such as a W3C ``traceparent`` (see :func:`~redkeep.queue.job.
        check_headers` for their limits). Every job's id is chosen here, before anything is
        sent (a random, time-sortable id unless ``job_id`` is given), so a request re-sent
        after a lost reply finds its own job instead of adding another."""
        if (
            job_id is None
            and headers is None
            and dedup_key is None
            and dedup_ttl is None
            and debounce is None
            and group is None
            and depends_on is None
            and delay is None
            and run_at is None
            and max_attempts is None
            and backoff is None
            and timeout is None
            and type(name) is str
            and 0 < len(name) <= MAX_NAME
            and name.isprintable()
            and type(priority) is int
            and -MAX_PRIORITY <= priority <= MAX_PRIORITY
        ):
            # The common case (queue defaults): the checks above are all _prepare would do;
            # only the payload is left to encode.
            if payload is None and self.max_payload_bytes >= 4:
                text = "null"
            else:
                text = encode_value(payload, self.max_payload_bytes)
            prepared = _Prepared(
                new_job_id(), name, text, priority, 0, 0, self.default_max_attempts, "", None,
                payload,
            )  # fmt: skip
        else:
            spec = JobSpec(
                name,
                payload,
                job_id,
                priority,
                delay,
                run_at,
                max_attempts,
                backoff,
                timeout,
                headers,
                dedup_key,
                dedup_ttl,
                debounce,
                group,
                depends_on,
                on_parent_failure,
            )
            prepared = self._prepare(spec)
            if prepared.parents:
                return (await self._enqueue_flow([prepared]))[0]
        if self.outbox is not None and not prepared.dedup and not prepared.group:
            return (await self.outbox.enqueue(self, [prepared]))[0]
        return await self._enqueue_one(prepared)

    async def enqueue_many(self, specs: Iterable[JobSpec]) -> list[Job]:
        """Enqueue several jobs in a few round trips; same rules as :meth:`enqueue`.

        Every spec is validated and encoded before anything is written.
        """
        prepared = []
        for index, spec in enumerate(specs):
            try:
                prepared.append(self._prepare(spec))
            except InvalidJob as exc:
                raise InvalidJob(f"job {index}: {exc}") from None
        if not prepared:
            return []
        if any(p.parents for p in prepared):
            return await self._enqueue_flow(prepared)
        if self.outbox is not None and not any(p.dedup or p.group for p in prepared):
            return await self.outbox.enqueue(self, prepared)
        return await self._enqueue(prepared)

    async def get_job(self, job_id: str) -> Job | None:
        """The job with ``job_id``, or None (a job held in the outbox has status ``outbox``)."""
        if self.outbox is not None:
            held = await self.outbox.get_job(self.name, str(job_id))
            if held is not None:
                return held
        return await self._get(str(job_id))

    async def cancel(self, job_id: str) -> bool:
        """Cancel a waiting, delayed or active job; False when it is finished or unknown.

        An active job's worker notices at its next lease renewal and cancels the handler task.
        A job still held in the outbox cannot be cancelled yet (:class:`JobError`).
        """
        await self._refuse_held(str(job_id), "cancelled")
        return await self._cancel(str(job_id), self._request_id())

    async def retry(self, job_id: str) -> bool:
        """Move a failed job back to waiting with its attempts reset; False if not failed."""
        await self._refuse_held(str(job_id), "retried")
        return await self._retry(str(job_id), self._request_id())

    async def delete_job(self, job_id: str) -> bool:
        """Delete a job that is not active (its record and its place in the queue); False when
        there is no such job. An active job raises :class:`~redkeep.errors.JobError`: cancel it
        first (its worker holds it). A job still held in the outbox cannot be deleted yet."""
        await self._refuse_held(str(job_id), "deleted")
        return await self._delete(str(job_id), self._request_id())

    async def counts(self) -> dict[str, int]:
        """Number of jobs per status (``outbox``: held in the local outbox)."""
        counts = await self._counts()
        counts[JobStatus.OUTBOX.value] = (
            await self.outbox.count(self.name) if self.outbox is not None else 0
        )
        return counts

    async def list_jobs(
        self, status: JobStatus | str, offset: int = 0, limit: int = 100
    ) -> list[Job]:
        """Jobs of ``status``: waiting in run order, delayed by run_at, finished newest first."""
        st = _status(status)
        if offset < 0 or limit < 0:
            raise InvalidJob("offset and limit must be >= 0")
        if limit == 0:
            return []
        if st is JobStatus.OUTBOX:
            if self.outbox is None:
                return []
            return await self.outbox.list_jobs(self.name, offset, limit)
        return await self._list(st, offset, limit)

    async def purge(self, status: JobStatus | str) -> int:
        """Delete every job of a finished ``status``; returns how many were deleted."""
        st = _status(status)
        if st not in FINISHED:
            raise InvalidJob(f"purge only accepts finished states, not {st.value!r}")
        return await self._purge(st)

    @abstractmethod
    def dump_jobs(self) -> AsyncIterator[Job]:
        """Every job of the queue, all statuses (for migration)."""

    async def restore_job(self, job: Job) -> bool:
        """Write ``job`` as is (status, attempts, priority, run_at); False if the id exists."""
        if job.status not in STATUSES or job.status == JobStatus.BLOCKED:
            raise InvalidJob(f"cannot restore a job with status {job.status!r}")
        headers = check_headers(job.headers) if job.headers else NO_HEADERS
        job = replace(job, queue=self.name, headers=headers)
        return await self._restore(job, self._request_id())

    async def close(self) -> None:
        """Release resources owned by the queue (not a client passed in)."""

    # -- worker protocol (see redkeep.queue.protocol) -----------------------------------------
    async def worker_started(self, worker_id: str) -> None:
        """Prepare the queue for a worker (default: nothing)."""

    @abstractmethod
    async def step(self, request: StepRequest) -> StepResult:
        """Apply the outcomes (fenced by token), recover expired leases, promote due delayed
        jobs, then claim up to ``request.claim`` jobs; idempotent per request id."""

    @abstractmethod
    async def extend_leases(
        self, worker_id: str, held: Sequence[tuple[str, int]], lease: float
    ) -> list[str]:
        """Renew the leases of ``held`` (id, token); return the ids no longer held."""

    @abstractmethod
    async def wait_for_jobs(self, worker_id: str, seconds: float) -> bool | Job:
        """Wait up to ``seconds`` for runnable jobs: a Job handed straight to ``worker_id``
        (already claimed for it), True when woken by the queue, False on timeout."""

    async def wake_workers(self) -> None:
        """Pass a wake-up on to another waiting worker (default: nothing)."""

    async def interrupt_wait(self, worker_id: str) -> None:
        """End ``worker_id``'s pending :meth:`wait_for_jobs` early (default: wake waiters)."""
        await self.wake_workers()

    async def worker_stopped(self, worker_id: str) -> None:
        """Drop what the queue kept for a stopped worker (default: nothing)."""

    def spin_only_while(self, predicate: Callable[[], bool]) -> Callable[[], None]:
        """Let the backend busy-poll only while ``predicate()`` is true (the worker: while it
        runs no job, so that spinning never holds up a handler); returns the function that
        lifts the condition. Default: ignored."""
        return lambda: None

    def worker_registry(self) -> WorkerRegistry | None:
        """Where the workers of this queue announce themselves (default: nowhere)."""
        return None

    # -- backend hooks -------------------------------------------------------------------------
    @abstractmethod
    async def _enqueue(self, prepared: list[_Prepared]) -> list[Job]: ...

    async def _enqueue_one(self, prepared: _Prepared) -> Job:
        """One job (:meth:`enqueue`); backends may override with a cheaper call."""
        return (await self._enqueue([prepared]))[0]

    @abstractmethod
    async def _get(self, job_id: str) -> Job | None: ...

    @abstractmethod
    async def _cancel(self, job_id: str, request_id: str) -> bool: ...

    @abstractmethod
    async def _retry(self, job_id: str, request_id: str) -> bool: ...

    @abstractmethod
    async def _delete(self, job_id: str, request_id: str) -> bool: ...

    @abstractmethod
    async def _counts(self) -> dict[str, int]: ...

    @abstractmethod
    async def _list(self, status: JobStatus, offset: int, limit: int) -> list[Job]: ...

    @abstractmethod
    async def _purge(self, status: JobStatus) -> int: ...

    @abstractmethod
    async def _restore(self, job: Job, request_id: str) -> bool: ...

    # -- helpers -------------------------------------------------------------------------------
    async def _refuse_held(self, job_id: str, what: str) -> None:
        if self.outbox is not None and await self.outbox.get_job(self.name, job_id) is not None:
            raise JobError(
                f"job {job_id!r} is held in the enqueue outbox until Redis is reachable; it can "
                f"be {what} once it is relayed"
            )

    _prepare = prepare  # JobSpec -> _Prepared (queue/prepare.py), bound as the method itself

    def backoff_for(self, job: Job) -> Backoff:
        """The retry backoff of ``job``: its own, else the queue's default."""
        return job.backoff or self.default_backoff

    def _request_id(self) -> str:
        """A fresh id for one admin request (cancel, retry, delete, purge, restore), remembered
        briefly by the Redis scripts so that a re-sent request answers the same."""
        return os.urandom(12).hex()


def _status(status: JobStatus | str) -> JobStatus:
    try:
        return JobStatus(status)
    except ValueError:
        names = ", ".join(s.value for s in JobStatus)
        raise InvalidJob(f"unknown job status {status!r} (expected one of {names})") from None


def active_refusal(job_id: str) -> JobError:
    """The error of deleting an active job (one message for every backend)."""
    return JobError(f"job {job_id!r} is active: cancel it before deleting it")
