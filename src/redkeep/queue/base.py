"""Job model and the backend-neutral :class:`JobQueue` base class.

Public methods validate input and encode payloads here; backends (Redis, memory) implement the
``_``-prefixed hooks. The worker drives a queue only through :meth:`JobQueue._step`,
:meth:`JobQueue._extend`, :meth:`JobQueue._wait` and :meth:`JobQueue._wake`.
"""

from __future__ import annotations

import enum
import itertools
import os
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, NamedTuple

import orjson

from redkeep.errors import InvalidJob, PayloadTooLarge, SerializationError
from redkeep.queue.backoff import Backoff

__all__ = [
    "FINISHED",
    "InvalidJob",
    "Job",
    "JobFailure",
    "JobQueue",
    "JobSpec",
    "JobStatus",
    "Outcome",
    "RetentionPolicy",
    "StepResult",
]

MAX_PRIORITY = 1000
MAX_NAME = 200
MAX_JOB_ID = 200
TRACEBACK_LIMIT = 4000


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True)
class JobFailure:
    """Why the last attempt of a job failed."""

    type: str
    message: str
    traceback: str = ""

    def to_json(self) -> str:
        return orjson.dumps([self.type, self.message, self.traceback]).decode()

    @classmethod
    def from_json(cls, text: str) -> JobFailure:
        try:
            kind, message, tb = orjson.loads(text)
            return cls(str(kind), str(message), str(tb))
        except (orjson.JSONDecodeError, ValueError, TypeError):
            return cls("UnknownError", text[:TRACEBACK_LIMIT])


@dataclass(frozen=True)
class Job:
    """A job and its state. Times are seconds since the epoch (server clock for Redis)."""

    id: str
    name: str
    queue: str
    payload: Any = None
    status: JobStatus = JobStatus.WAITING
    priority: int = 0
    attempts: int = 0
    max_attempts: int = 3
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    run_at: float | None = None
    result: Any = None
    error: JobFailure | None = None
    worker_id: str | None = None
    timeout: float | None = None
    backoff: Backoff | None = None
    token: int = 0
    """Fencing token of the current claim (internal; stale tokens are rejected)."""
    payload_error: str | None = None
    """Set when the stored payload cannot be decoded (``payload`` is then None) or a field of
    the stored record is corrupted; a worker fails such a job at once with this reason."""

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class JobSpec:
    """Arguments of one :meth:`JobQueue.enqueue`, for :meth:`JobQueue.enqueue_many`."""

    name: str
    payload: Any = None
    job_id: str | None = None
    priority: int = 0
    delay: float | None = None
    run_at: float | None = None
    max_attempts: int | None = None
    backoff: Backoff | float | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class RetentionPolicy:
    """How long and how many finished jobs are kept (0 = not kept at all)."""

    completed_ttl: float = 3600.0
    completed_max: int = 10_000
    failed_ttl: float = 7 * 24 * 3600.0
    failed_max: int = 100_000


@dataclass
class Outcome:
    """What a worker reports for one attempt.

    kind: ``done`` (result), ``retry`` (failed attempt; retried after ``delay`` unless attempts
    are used up), ``fail`` (failed for good), ``release`` (back to waiting, attempt not counted).
    """

    job_id: str
    token: int
    kind: str
    data: str = ""
    delay: float = 0.0


@dataclass
class StepResult:
    """Answer of :meth:`JobQueue._step`."""

    jobs: list[Job] = field(default_factory=list)
    next_due: float | None = None
    """Seconds until the earliest delayed job is due (None: no delayed jobs)."""
    recovered: int = 0
    """Expired leases moved back to waiting or failed by this step."""
    rejected: list[str] = field(default_factory=list)
    """Ids whose outcome was refused: the caller's token is stale."""
    more: bool = False
    """More jobs are waiting than were claimed."""


# -- encoding -------------------------------------------------------------------------------------


def encode_value(value: Any, limit: int, what: str = "payload") -> str:
    """JSON-encode ``value``; raise SerializationError / PayloadTooLarge."""
    try:
        data = orjson.dumps(value)
    except TypeError as exc:
        raise SerializationError(f"job {what} is not JSON-serializable: {exc}") from None
    if len(data) > limit:
        raise PayloadTooLarge(len(data), limit)
    return data.decode()


def decode_value(text: str | None, what: str = "payload") -> Any:
    """Decode JSON text written by :func:`encode_value`."""
    if text is None or text == "":
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SerializationError(f"cannot decode job {what}: {exc}") from None


_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def _new_id_prefix() -> None:
    # A forked child must not repeat its parent's ids (fresh ids skip the existence check).
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX = os.urandom(8).hex()
    _ID_COUNTER = itertools.count(1)


os.register_at_fork(after_in_child=_new_id_prefix)


def new_job_id() -> str:
    """A unique id: a random per-process prefix (64 bits) and a counter."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):x}"


_JOB_DEFAULTS: dict[str, Any] = {}


def make_job(**values: Any) -> Job:
    """Build a Job without the per-field cost of a frozen dataclass __init__ (hot paths)."""
    if not _JOB_DEFAULTS:
        _JOB_DEFAULTS.update({f.name: f.default for f in fields(Job) if f.default is not MISSING})
    job = object.__new__(Job)
    job.__dict__.update(_JOB_DEFAULTS, **values)  # values are applied after the defaults
    return job


# -- the queue ------------------------------------------------------------------------------------


class JobQueue(ABC):
    """A named, async job queue. See docs/queue.md for the guarantees."""

    backend: str = "abstract"

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
    ) -> Job:
        """Add a job; with ``job_id``, return the existing job instead when that id exists."""
        if (
            job_id is None
            and delay is None
            and run_at is None
            and max_attempts is None
            and backoff is None
            and timeout is None
            and type(name) is str
            and 0 < len(name) <= MAX_NAME
            and type(priority) is int
            and -MAX_PRIORITY <= priority <= MAX_PRIORITY
        ):
            # The common case (fresh id, queue defaults): the checks above are all _prepare
            # would do; only the payload is left to encode.
            if payload is None and self.max_payload_bytes >= 4:
                text = "null"
            else:
                text = encode_value(payload, self.max_payload_bytes)
            prepared = _Prepared(
                new_job_id(), 0, name, text, priority, 0, 0, self.default_max_attempts, "",
                None, payload,
            )  # fmt: skip
            return await self._enqueue_one(prepared)
        spec = JobSpec(
            name, payload, job_id, priority, delay, run_at, max_attempts, backoff, timeout
        )
        return await self._enqueue_one(self._prepare(spec))

    async def enqueue_many(self, specs: Iterable[JobSpec]) -> list[Job]:
        """Enqueue several jobs in a few round trips; same rules as :meth:`enqueue`.

        Every spec is validated and encoded before anything is written.
        """
        prepared = [self._prepare(spec) for spec in specs]
        if not prepared:
            return []
        return await self._enqueue(prepared)

    async def get_job(self, job_id: str) -> Job | None:
        """The job with ``job_id``, or None."""
        return await self._get(str(job_id))

    async def cancel(self, job_id: str) -> bool:
        """Cancel a waiting, delayed or active job; False when it is finished or unknown.

        An active job's worker notices at its next lease renewal and cancels the handler task.
        """
        return await self._cancel(str(job_id))

    async def retry(self, job_id: str) -> bool:
        """Move a failed job back to waiting with its attempts reset; False if not failed."""
        return await self._retry(str(job_id))

    async def counts(self) -> dict[str, int]:
        """Number of jobs per status."""
        return await self._counts()

    async def list_jobs(
        self, status: JobStatus | str, offset: int = 0, limit: int = 100
    ) -> list[Job]:
        """Jobs of ``status``: waiting in run order, delayed by run_at, finished newest first."""
        st = _status(status)
        if offset < 0 or limit < 0:
            raise InvalidJob("offset and limit must be >= 0")
        if limit == 0:
            return []
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
        if job.status not in set(JobStatus):
            raise InvalidJob(f"unknown status {job.status!r}")
        return await self._restore(replace(job, queue=self.name))

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources owned by the queue (not a client passed in)."""

    # -- backend hooks -------------------------------------------------------------------------
    @abstractmethod
    async def _enqueue(self, prepared: list[_Prepared]) -> list[Job]: ...

    async def _enqueue_one(self, prepared: _Prepared) -> Job:
        """One job (:meth:`enqueue`); backends may override with a cheaper call."""
        return (await self._enqueue([prepared]))[0]

    @abstractmethod
    async def _get(self, job_id: str) -> Job | None: ...

    @abstractmethod
    async def _cancel(self, job_id: str) -> bool: ...

    @abstractmethod
    async def _retry(self, job_id: str) -> bool: ...

    @abstractmethod
    async def _counts(self) -> dict[str, int]: ...

    @abstractmethod
    async def _list(self, status: JobStatus, offset: int, limit: int) -> list[Job]: ...

    @abstractmethod
    async def _purge(self, status: JobStatus) -> int: ...

    @abstractmethod
    async def _restore(self, job: Job) -> bool: ...

    @abstractmethod
    async def _step(
        self,
        worker_id: str,
        outcomes: Sequence[Outcome],
        claim: int,
        lease: float,
        idle: float = 0.0,
    ) -> StepResult:
        """Apply ``outcomes`` (fenced by token), reap expired leases, promote due delayed
        jobs, then claim up to ``claim`` jobs for ``worker_id`` with a lease of ``lease`` s.

        With ``idle`` > 0 and fewer jobs than ``claim`` available, the worker is registered
        for ``idle`` s as ready for a direct hand-off (see :meth:`_wait`)."""

    @abstractmethod
    async def _extend(
        self, worker_id: str, held: Sequence[tuple[str, int]], lease: float
    ) -> list[str]:
        """Renew the leases of ``held`` (id, token); return the ids no longer held."""

    @abstractmethod
    async def _wait(self, seconds: float, worker_id: str = "") -> bool | Job:
        """Wait up to ``seconds`` for runnable jobs: a Job handed straight to ``worker_id``
        (already claimed for it), True when woken by the queue, False on timeout."""

    async def _wake(self) -> None:  # noqa: B027 - optional hook
        """Hand a wake-up on to another idle worker (default: nothing)."""

    async def _interrupt(self, worker_id: str) -> None:
        """End ``worker_id``'s pending :meth:`_wait` early (default: wake any waiter)."""
        await self._wake()

    # -- helpers -------------------------------------------------------------------------------
    def _prepare(self, spec: JobSpec) -> _Prepared:
        if not isinstance(spec.name, str) or not spec.name or len(spec.name) > MAX_NAME:
            raise InvalidJob(f"job name must be a non-empty str of at most {MAX_NAME} characters")
        job_id = spec.job_id
        if job_id is not None and (
            not isinstance(job_id, str) or not job_id or len(job_id) > MAX_JOB_ID
        ):
            raise InvalidJob(f"job_id must be a non-empty str of at most {MAX_JOB_ID} chars")
        prio = spec.priority
        if not isinstance(prio, int) or isinstance(prio, bool) or abs(prio) > MAX_PRIORITY:
            raise InvalidJob(f"priority must be an int in [-{MAX_PRIORITY}, {MAX_PRIORITY}]")
        attempts = self.default_max_attempts if spec.max_attempts is None else spec.max_attempts
        if not isinstance(attempts, int) or attempts < 1:
            raise InvalidJob("max_attempts must be an int >= 1")
        if spec.delay is not None and spec.run_at is not None:
            raise InvalidJob("give delay or run_at, not both")
        delay_ms = 0
        if spec.delay is not None:
            if not spec.delay >= 0:
                raise InvalidJob("delay must be >= 0 seconds")
            delay_ms = int(spec.delay * 1000)
        run_at_ms = 0
        if spec.run_at is not None:
            if not spec.run_at >= 0:
                raise InvalidJob("run_at must be seconds since the epoch")
            # run_at is an absolute wall-clock time given by the caller; the server clock
            # decides whether it is due.
            run_at_ms = int(spec.run_at * 1000)
        if spec.timeout is not None and not spec.timeout > 0:
            raise InvalidJob("timeout must be > 0 seconds")
        backoff = spec.backoff
        if isinstance(backoff, int | float) and not isinstance(backoff, bool):
            if backoff < 0:
                raise InvalidJob("backoff must be >= 0 seconds")
            backoff = Backoff(float(backoff), float(backoff), "fixed", jitter=False)
        elif backoff is not None and not isinstance(backoff, Backoff):
            raise InvalidJob("backoff must be a Backoff or a number of seconds")
        payload = encode_value(spec.payload, self.max_payload_bytes)
        return _Prepared(
            id=job_id or new_job_id(),
            check=1 if job_id else 0,
            name=spec.name,
            payload=payload,
            priority=prio,
            delay_ms=delay_ms,
            run_at_ms=run_at_ms,
            max_attempts=attempts,
            backoff=orjson.dumps(backoff.to_list()).decode() if backoff else "",
            timeout=spec.timeout,
            value=spec.payload,
        )

    def backoff_for(self, job: Job) -> Backoff:
        return job.backoff or self.default_backoff


class _Prepared(NamedTuple):
    """A validated, encoded job (a tuple: cheap to build on the enqueue hot path)."""

    id: str
    check: int  # 1: caller-chosen id, may exist already; 0: fresh id
    name: str
    payload: str
    priority: int
    delay_ms: int
    run_at_ms: int
    max_attempts: int
    backoff: str
    timeout: float | None
    value: Any


def _status(status: JobStatus | str) -> JobStatus:
    try:
        return JobStatus(status)
    except ValueError:
        names = ", ".join(s.value for s in JobStatus)
        raise InvalidJob(f"unknown job status {status!r} (expected one of {names})") from None


def now() -> float:
    return time.time()
