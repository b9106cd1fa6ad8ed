"""Exceptions raised by redkeep.

Every exception redkeep raises derives from :class:`RedkeepError`::

    RedkeepError
    ├── ConfigError                 settings from the environment are invalid
    ├── SerializationError          a value cannot be encoded or decoded
    │   └── PayloadTooLarge         an encoded value exceeds ``max_payload_bytes``
    ├── InvalidKey                  a cache key is empty, not a str, or too long
    ├── InvalidName                 a cache or queue name breaks the naming rule (redkeep.names)
    ├── BackendError                the storage backend failed
    │   ├── BackendUnavailable      connection refused / reset / DNS failure (transient)
    │   │   └── OutcomeUnknown      lost after the request was sent: it may have run
    │   ├── BackendTimeout          no answer within ``command_timeout`` (transient)
    │   ├── BackendAuthError        wrong password, unknown ACL user, NOAUTH
    │   ├── BackendResponseError    the server answered with an error (WRONGTYPE, OOM, ...)
    │   └── ReplicationTimeout      WAIT saw fewer replicas acknowledge a write than required
    ├── CircuitOpen                 the circuit breaker rejects calls for now (transient)
    ├── JobError                    a job-queue operation was refused
    │   ├── InvalidJob              an enqueue argument is invalid (name, priority, delay...)
    │   ├── JobNotFound             no job with that id
    │   ├── QueueFull               a memory queue is at its byte limit; the enqueue is refused
    │   └── LeaseLost               a fencing token is stale: another attempt owns the job
    ├── StartupError                strict startup refused an unusable backend
    ├── AsyncContextError           a blocking redkeep.sync call inside a running event loop
    ├── SnapshotError               a migration record is invalid (redkeep.migrate)
    └── MigrationAborted            a migration stopped on bad records (redkeep.migrate)

Transport code translates redis-py and httpx exceptions into this tree at the boundary, and
every message passes through :func:`scrub` so that passwords and tokens never leak.
"""

from __future__ import annotations

import re

__all__ = [
    "BackendAuthError",
    "BackendError",
    "BackendResponseError",
    "BackendTimeout",
    "BackendUnavailable",
    "CircuitOpen",
    "ConfigError",
    "InvalidJob",
    "InvalidKey",
    "InvalidName",
    "JobError",
    "JobNotFound",
    "LeaseLost",
    "OutcomeUnknown",
    "PayloadTooLarge",
    "QueueFull",
    "RedkeepError",
    "ReplicationTimeout",
    "SerializationError",
    "StartupError",
    "is_transient",
    "register_secret",
    "scrub",
]


class RedkeepError(Exception):
    """Base class of every redkeep exception."""


class ConfigError(RedkeepError, ValueError):
    """Invalid settings. ``problems`` maps each bad environment variable to its reason."""

    def __init__(self, message: str, problems: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.problems: dict[str, str] = dict(problems or {})


class SerializationError(RedkeepError, ValueError):
    """A value could not be encoded, or stored text could not be decoded."""


class PayloadTooLarge(SerializationError):
    """An encoded value is larger than the configured ``max_payload_bytes``."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"encoded payload is {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class InvalidKey(RedkeepError, ValueError):
    """A cache key is not a non-empty str within the configured maximum length."""


class InvalidName(RedkeepError, ValueError):
    """A cache or queue name breaks the one naming rule of :mod:`redkeep.names`."""


class BackendError(RedkeepError):
    """The storage backend (Redis, Upstash) failed."""


class BackendUnavailable(BackendError):
    """The backend cannot be reached: connection refused or reset, DNS failure, closed client."""


class OutcomeUnknown(BackendUnavailable):
    """The connection was lost after the command was sent and before its reply: the command
    may or may not have run. It was not sent again because running it twice is not the same as
    running it once (see :mod:`redkeep.redis.policy`); the caller decides (an enqueue with its
    job id, for instance, is safe to repeat)."""


class BackendTimeout(BackendError):
    """The backend did not answer within the command or connect timeout."""


class BackendAuthError(BackendError):
    """Authentication failed: wrong password or token, unknown ACL user, NOAUTH."""


class BackendResponseError(BackendError):
    """The backend answered with an error (WRONGTYPE, OOM, CROSSSLOT, script errors...)."""


class ReplicationTimeout(BackendError):
    """``WAIT`` confirmed fewer replicas than required within the timeout. The write is on the
    primary but may be lost if it fails over now; repeating an idempotent write is safe.
    ``job_ids`` names the jobs of a queue write (an enqueue: enqueue them again with the same
    ids; a worker step: the outcomes it reported)."""

    def __init__(
        self,
        message: str,
        acknowledged: int = 0,
        required: int = 0,
        *,
        job_ids: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged
        self.required = required
        self.job_ids = job_ids


class CircuitOpen(RedkeepError):
    """The circuit breaker is open: calls are refused until its reset timeout passes."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name!r} is open; retry in {retry_after:.2f}s")
        self.name = name
        self.retry_after = retry_after


class JobError(RedkeepError):
    """A job-queue operation was refused."""


class InvalidJob(JobError, ValueError):
    """An enqueue argument is invalid (bad name, priority, delay, attempts...)."""


class JobNotFound(JobError, KeyError):
    """No job with the given id exists."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "job not found"


class QueueFull(JobError):
    """A memory queue holds ``limit`` bytes of jobs already: the enqueue was refused (nothing
    was added). It clears as workers finish jobs and retention drops finished ones."""

    def __init__(self, queue: str, size: int, limit: int) -> None:
        super().__init__(
            f"memory queue {queue!r} is full: with this enqueue its jobs would take about {size} "
            f"bytes, over its limit of {limit} (REDKEEP_QUEUE_MEMORY_MAX_BYTES); retry once "
            "workers catch up, or use Redis"
        )
        self.queue = queue
        self.size = size
        self.limit = limit


class LeaseLost(JobError):
    """The caller's fencing token is stale: the job was reclaimed by another attempt."""


class StartupError(RedkeepError):
    """Strict startup refused an unusable backend (unreachable, scripts, eviction policy)."""


_TRANSIENT = (BackendUnavailable, BackendTimeout, ReplicationTimeout, CircuitOpen)


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same call later may succeed (outage, timeout, open breaker)."""
    if isinstance(exc, _TRANSIENT):
        return True
    if isinstance(exc, BackendResponseError):
        text = str(exc)
        return text.startswith(("LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN"))
    return False


# ---------------------------------------------------------------------------------------------
# Secret scrubbing

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<cred>[^@/\s]+)@")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_AUTH_ARGS = re.compile(r"(?i)\b(AUTH|HELLO\s+\d+\s+AUTH)\s+\S+(\s+\S+)?")
_secrets: set[str] = set()


def register_secret(secret: str | None) -> None:
    """Remember a secret (password, token) so that :func:`scrub` removes it from any text."""
    if secret and len(secret) >= 3:
        _secrets.add(secret)


def scrub(text: str) -> str:
    """Remove credentials from ``text``: URL user-info, bearer tokens, AUTH args, known secrets."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}***@", text)
    text = _BEARER.sub(r"\1***", text)
    text = _AUTH_ARGS.sub(lambda m: f"{m.group(1)} ***", text)
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text
