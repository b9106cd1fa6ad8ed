"""The job model: a job's status, record and failure, payload encoding, and job ids."""

from __future__ import annotations

import base64
import enum
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any

import orjson

from redkeep.errors import InvalidJob, PayloadTooLarge, SerializationError
from redkeep.queue.backoff import Backoff
from redkeep.serialization import JsonSerializer

__all__ = [
    "FINISHED",
    "MAX_DEDUP_KEY",
    "MAX_HEADERS",
    "MAX_HEADER_NAME",
    "MAX_HEADER_VALUE",
    "MAX_JOB_ID",
    "MAX_NAME",
    "MAX_PARENTS",
    "MAX_PRIORITY",
    "NO_HEADERS",
    "PARENT_MODES",
    "STATUSES",
    "TRACEBACK_LIMIT",
    "Job",
    "JobFailure",
    "JobSpec",
    "JobStatus",
    "RetentionPolicy",
    "check_headers",
    "decode_value",
    "encode_value",
    "make_job",
    "new_job_id",
]

MAX_PRIORITY = 1000
MAX_NAME = 200
MAX_JOB_ID = 200
MAX_DEDUP_KEY = 200
MAX_PARENTS = 100_000
"""Most parents (``depends_on``) one job may have."""
PARENT_MODES = ("fail", "cancel", "ignore")
"""The values of ``on_parent_failure``."""
"""Longest deduplication key (``enqueue(..., dedup_key=...)``), like a job id."""
TRACEBACK_LIMIT = 4000
MAX_HEADERS = 32
MAX_HEADER_NAME = 100
MAX_HEADER_VALUE = 8192
"""Limits of a job's headers: count, name length, value length (W3C baggage may take 8192)."""


class _NoHeaders(Mapping[str, str]):
    """An empty, read-only, hashable mapping (a dataclass default must be hashable)."""

    __slots__ = ()

    def __getitem__(self, key: str) -> str:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "{}"


NO_HEADERS: Mapping[str, str] = _NoHeaders()
"""The headers of a job enqueued without any (empty, read-only, shared)."""


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

    OUTBOX = "outbox"
    """Held in the local enqueue outbox until Redis is reachable (:mod:`redkeep.queue.outbox`)."""
    BLOCKED = "blocked"
    """Waiting for its parents (``depends_on``) to complete (:mod:`redkeep.queue.flows`)."""
    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


STATUSES: tuple[str, ...] = tuple(s.value for s in JobStatus if s is not JobStatus.OUTBOX)
"""Every status a backend stores, in lifecycle order (the one definition; the Lua scripts' twin is
checked by a test): all but ``outbox``, whose jobs are held in the enqueue outbox instead."""

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
    progress: Any = None
    """The last progress its handler reported (a number 0-100 or a small JSON value), or None
    (see :mod:`redkeep.queue.progress`)."""
    headers: Mapping[str, str] = NO_HEADERS
    """String metadata given at enqueue (e.g. the W3C ``traceparent`` of the enqueuing trace),
    stored with the payload and read back with the job; never changes."""
    dedup_key: str | None = None
    """The deduplication key given at enqueue (see :meth:`JobQueue.enqueue`), or None."""
    group: str | None = None
    """The group given at enqueue (fair scheduling and per-group limits, see
    :meth:`JobQueue.set_group_limit`), or None."""
    depends_on: tuple[str, ...] = ()
    """Ids of the jobs this one waits for (its parents, see :mod:`redkeep.queue.flows`)."""
    on_parent_failure: str | None = None
    """What a failed or cancelled parent does to this job: ``fail``, ``cancel`` or ``ignore``
    (None for a job without parents)."""
    parent_results: Mapping[str, Any] | None = None
    """Parent id -> result, for a job with parents claimed by a worker (None otherwise; a
    parent removed since, or ignored after it failed, has None)."""

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
    headers: Mapping[str, str] | None = None
    dedup_key: str | None = None
    dedup_ttl: float | None = None
    debounce: float | None = None
    group: str | None = None
    depends_on: Sequence[str | Job | tuple[str, str]] | None = None
    on_parent_failure: str = "fail"
    queue: str | None = None
    """The queue of this job in a :meth:`~redkeep.queue.flows.FlowsMixin.chain` or
    :meth:`~redkeep.queue.flows.FlowsMixin.group` across queues (None: the queue called)."""


@dataclass(frozen=True)
class RetentionPolicy:
    """How long and how many finished jobs are kept (0 = not kept at all)."""

    completed_ttl: float = 3600.0
    completed_max: int = 10_000
    failed_ttl: float = 7 * 24 * 3600.0
    failed_max: int = 100_000


def check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` as a dict, or :class:`~redkeep.errors.InvalidJob` naming what is wrong: at
    most :data:`MAX_HEADERS` pairs of str, names 1-:data:`MAX_HEADER_NAME` characters, values
    up to :data:`MAX_HEADER_VALUE`."""
    if not isinstance(headers, Mapping):
        raise InvalidJob(f"headers must be a mapping of str to str, got {type(headers).__name__}")
    if len(headers) > MAX_HEADERS:
        raise InvalidJob(f"a job has at most {MAX_HEADERS} headers, got {len(headers)}")
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_HEADER_NAME:
            raise InvalidJob(
                f"header name {str(name)[:40]!r} must be a str of 1-{MAX_HEADER_NAME} characters"
            )
        if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE:
            what = type(value).__name__ if not isinstance(value, str) else f"{len(value)} chars"
            raise InvalidJob(
                f"header {name!r} must be a str of at most {MAX_HEADER_VALUE} characters, "
                f"got {what}"
            )
        out[name] = value
    return out


_SERIALIZERS: dict[int, JsonSerializer] = {}


def serializer_for(limit: int) -> JsonSerializer:
    """The exact serializer (:mod:`redkeep.serialization`) with a size limit of ``limit``."""
    found = _SERIALIZERS.get(limit)
    if found is None:
        found = _SERIALIZERS[limit] = JsonSerializer(limit)
    return found


def encode_value(value: Any, limit: int, what: str = "payload") -> str:
    """Encode a job payload or result with the exact serializer (datetimes, UUIDs, tuples,
    sets, bytes, Decimals, big ints and NaN round-trip); raise SerializationError naming
    ``what`` / PayloadTooLarge."""
    try:
        return serializer_for(limit).dumps(value)
    except PayloadTooLarge:
        raise
    except SerializationError as exc:
        raise SerializationError(f"job {what} cannot be serialized: {exc}") from None


def decode_value(text: str | None, what: str = "payload") -> Any:
    """Decode text written by :func:`encode_value` (or plain JSON)."""
    if text is None or text == "":
        return None
    try:
        return _READER.loads(text)
    except SerializationError as exc:
        raise SerializationError(f"cannot decode job {what}: {exc}") from None


_READER = JsonSerializer()

# Job ids: 48 bits of milliseconds since the epoch then 80 random bits (os.urandom), written
# as 22 characters of base64 with an alphabet in ASCII order ("0-9:A-Z_a-z": what the HTTP
# API accepts in a job id), so ids sort by creation time (to the millisecond), start with a
# digit for centuries to come and cannot be guessed.
_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SORTED = b"0123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_TO_SORTED = bytes.maketrans(_B64, _SORTED)


def new_job_id() -> str:
    """A random id, 22 characters, sortable by creation time (ms): 48-bit timestamp + 80
    random bits."""
    raw = (time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10)
    return base64.urlsafe_b64encode(raw)[:22].translate(_TO_SORTED).decode()


_JOB_DEFAULTS: dict[str, Any] = {}


def make_job(**values: Any) -> Job:
    """Build a Job without the per-field cost of a frozen dataclass __init__ (hot paths)."""
    if not _JOB_DEFAULTS:
        _JOB_DEFAULTS.update({f.name: f.default for f in fields(Job) if f.default is not MISSING})
    job = object.__new__(Job)
    job.__dict__.update(_JOB_DEFAULTS, **values)  # values are applied after the defaults
    return job
