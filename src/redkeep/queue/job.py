"""The job model: a job's status, record and failure, what a worker reports, and job ids."""

from __future__ import annotations

import enum
import itertools
import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import orjson

from redkeep.errors import PayloadTooLarge, SerializationError
from redkeep.queue.backoff import Backoff

__all__ = [
    "FINISHED",
    "MAX_JOB_ID",
    "MAX_NAME",
    "MAX_PRIORITY",
    "STORED",
    "TRACEBACK_LIMIT",
    "Job",
    "JobFailure",
    "JobSpec",
    "JobStatus",
    "Outcome",
    "RetentionPolicy",
    "StepResult",
    "decode_value",
    "encode_value",
    "make_job",
    "new_job_id",
]

MAX_PRIORITY = 1000
MAX_NAME = 200
MAX_JOB_ID = 200
TRACEBACK_LIMIT = 4000


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

    OUTBOX = "outbox"
    """Held in the local enqueue outbox until Redis is reachable (:mod:`redkeep.queue.outbox`)."""
    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
STORED = tuple(s for s in JobStatus if s is not JobStatus.OUTBOX)
"""The statuses a backend stores: all but ``outbox`` (held by the local outbox instead)."""


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
