"""Job events, awaiting results, progress and per-minute counters: the public API and model.

Every status change of a job appends one :class:`JobEvent` to a bounded per-queue log, in the
same atomic step as the change (on Redis: the ``transition()`` function of the Lua library,
``scripts/lib/events.lua``, writing to a Redis Stream). Events and their names:

==============  ====================================================================
``enqueued``    a new job (then ``delayed``, ``active`` or ``blocked`` too when it did not
                start waiting)
``blocked``     waiting for its parents (``depends_on``, see :mod:`redkeep.queue.flows`)
``waiting``     back to waiting: a delayed job came due, a job was released or lost its
                lease, a failed job was retried by hand (``data["from"]``: the status before)
``delayed``     waiting for its ``run_at``
``active``      claimed by a worker
``progress``    its handler reported progress (``data["progress"]``)
``completed``   finished with a result
``failed``      an attempt failed; ``data["will_retry"]`` says whether a retry is scheduled
``cancelled``   cancelled
``removed``     deleted by retention or a purge
==============  ====================================================================

:class:`EventsMixin` adds the public methods to :class:`~redkeep.queue.base.JobQueue`;
backends implement the ``_``-prefixed hooks. See docs/events.md.
"""

from __future__ import annotations

import asyncio
import math
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redkeep.errors import InvalidJob, JobNotFound
from redkeep.queue.job import encode_value

if TYPE_CHECKING:
    from redkeep.queue.job import Job

__all__ = [
    "DEFAULT_MAX_EVENTS",
    "EVENT_NAMES",
    "MAX_PROGRESS_BYTES",
    "EventsConfig",
    "EventsMixin",
    "JobEvent",
    "ThroughputPoint",
    "encode_progress",
    "event_from_fields",
    "throughput_points",
]

DEFAULT_MAX_EVENTS = 10_000
"""Events kept per queue unless :meth:`EventsMixin.set_events` says otherwise."""
MAX_PROGRESS_BYTES = 4096
"""Largest encoded progress value a handler may report."""
EVENT_NAMES = (
    "enqueued", "blocked", "waiting", "delayed", "active", "progress", "completed", "failed",
    "cancelled", "removed",
)  # fmt: skip
WINDOW_MINUTES = 60
"""Minutes of per-minute counters a queue keeps."""


@dataclass(frozen=True)
class JobEvent:
    """One event of a job. ``id`` is its position in the queue's event log (a Redis Stream id
    such as ``1718000000000-3``): pass it as ``since`` to resume after it."""

    id: str
    job_id: str
    event: str
    at: float
    """When it happened: seconds since the epoch (the server's clock on Redis)."""
    data: dict[str, Any] = field(default_factory=dict)
    """``from`` (the previous status, when there was one), ``will_retry`` (failed),
    ``progress`` (progress)."""


@dataclass(frozen=True)
class ThroughputPoint:
    """Jobs that finished in one minute of one queue."""

    minute: float
    """Start of the minute, seconds since the epoch."""
    completed: int
    failed: int


@dataclass(frozen=True)
class EventsConfig:
    """Whether a queue records job events, and how many it keeps (stored with the queue, so
    that every process agrees)."""

    enabled: bool = True
    max_events: int = DEFAULT_MAX_EVENTS


def stream_ms(event_id: str) -> int:
    """The milliseconds part of a stream id."""
    return int(event_id.partition("-")[0])


def event_from_fields(event_id: str, fields: Mapping[str, str]) -> JobEvent:
    """The :class:`JobEvent` of a stream entry (fields ``j``, ``e``, ``p``, ``r``, ``d``)."""
    data: dict[str, Any] = {}
    prev = fields.get("p")
    if prev:
        data["from"] = prev
    retry = fields.get("r")
    if retry is not None:
        data["will_retry"] = retry == "1"
    progress = fields.get("d")
    if progress is not None:
        from redkeep.queue.job import decode_value

        data["progress"] = decode_value(progress, "progress")
    return JobEvent(
        event_id, fields.get("j", ""), fields.get("e", ""), stream_ms(event_id) / 1000.0, data
    )


def is_finish(event: JobEvent) -> bool:
    """True for an event after which the job is finished (completed, failed for good,
    cancelled)."""
    name = event.event
    if name == "failed":
        return not event.data.get("will_retry", False)
    return name in ("completed", "cancelled")


def encode_progress(value: Any) -> str:
    """Check and encode a progress value: a number from 0 to 100, or a JSON value of at most
    :data:`MAX_PROGRESS_BYTES` encoded; :class:`InvalidJob` otherwise."""
    if isinstance(value, bool) or value is None:
        raise InvalidJob("progress must be a number from 0 to 100 or a JSON value, not "
                         f"{value!r}")  # fmt: skip
    if isinstance(value, int | float) and not (0 <= value <= 100):
        raise InvalidJob(f"progress as a number must be from 0 to 100, got {value!r}")
    try:
        return encode_value(value, MAX_PROGRESS_BYTES, "progress")
    except InvalidJob:
        raise
    except Exception as exc:
        raise InvalidJob(f"progress cannot be stored: {exc}") from None


def throughput_points(
    counters: Mapping[str, str], now_ms: int, minutes: int
) -> list[ThroughputPoint]:
    """The last ``minutes`` minutes (oldest first, the current one last) from the 60-slot
    counter hash (``m<slot>`` minute number, ``c<slot>`` completed, ``f<slot>`` failed)."""
    current = now_ms // 60_000
    out = []
    for minute in range(current - minutes + 1, current + 1):
        slot = minute % WINDOW_MINUTES
        if counters.get(f"m{slot}") == str(minute):
            completed = int(counters.get(f"c{slot}") or 0)
            failed = int(counters.get(f"f{slot}") or 0)
        else:
            completed = failed = 0
        out.append(ThroughputPoint(minute * 60.0, completed, failed))
    return out


class EventsMixin:
    """Events, ``wait``, progress and counters on a :class:`~redkeep.queue.base.JobQueue`."""

    name: str

    def events(self, since: str | None = None) -> AsyncIterator[JobEvent]:
        """Follow the queue's job events: an endless async iterator (stop it by breaking out
        or cancelling). ``since`` = the id of an event seen before: resume right after it
        (events older than the bound are gone); None: only events from now on."""
        if since is not None and not _valid_event_id(since):
            raise InvalidJob(f"since must be an event id like '1718000000000-0', got {since!r}")
        return self._events(since)

    async def read_events(self, since: str | None = None, limit: int = 100) -> list[JobEvent]:
        """Up to ``limit`` stored events after ``since`` (None: the oldest kept), oldest
        first, without waiting for new ones."""
        if since is not None and not _valid_event_id(since):
            raise InvalidJob(f"since must be an event id like '1718000000000-0', got {since!r}")
        if not 1 <= limit <= 10_000:
            raise InvalidJob("limit must be from 1 to 10000")
        return await self._read_events(since, limit)

    async def last_event_id(self) -> str:
        """The id of the newest stored event (``"0-0"`` when there is none): a ``since`` for
        :meth:`events` that misses nothing from now on, even before iteration starts."""
        return await self._last_event_id()

    async def job_events(self, job_id: str, limit: int = 200) -> list[JobEvent]:
        """The events of one job still in the queue's log, oldest first (at most ``limit``,
        the newest). Scans the log (bounded by its size): meant for a job's detail view."""
        if not 1 <= limit <= 10_000:
            raise InvalidJob("limit must be from 1 to 10000")
        return await self._job_events(str(job_id), limit)

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:  # noqa: ASYNC109
        """The job once it is finished (completed, failed for good, or cancelled).

        Raises :class:`~redkeep.errors.JobNotFound` for an unknown id and the built-in
        :class:`TimeoutError` when ``timeout`` seconds pass first. On RESP transports it is
        woken by the queue's event log (one shared listener per process and queue: no
        polling, no connection per waiter); over Upstash REST it polls with back-off.
        """
        if timeout is not None and not timeout >= 0:
            raise InvalidJob("timeout must be >= 0 seconds or None")
        if timeout is None:
            return await self._wait(str(job_id))
        async with asyncio.timeout(timeout):
            return await self._wait(str(job_id))

    async def throughput(self, minutes: int = 15) -> list[ThroughputPoint]:
        """Jobs completed and failed per minute over the last ``minutes`` (at most 60), oldest
        first; the last point is the current, partial minute."""
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 60:
            raise InvalidJob("minutes must be an int from 1 to 60")
        return await self._throughput(minutes)

    async def set_events(self, enabled: bool = True, max_events: int | None = None) -> None:
        """Switch the queue's job events on or off, for every process using the queue (the
        setting is stored with the queue). ``max_events`` bounds the log (approximately:
        Redis trims whole stream nodes); None keeps the current bound. With events off, only
        the finish of a job someone :meth:`wait`\\ s for is still recorded."""
        if max_events is not None and (
            isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1
        ):
            raise InvalidJob("max_events must be an int >= 1")
        current = await self._events_config()
        bound = current.max_events if max_events is None else max_events
        await self._set_events_config(EventsConfig(bool(enabled), bound))

    async def events_config(self) -> EventsConfig:
        """Whether events are on for this queue, and their bound."""
        return await self._events_config()

    async def report_progress(self, job_id: str, token: int, value: Any) -> None:
        """Store ``value`` as the progress of the attempt holding fencing ``token`` and emit a
        ``progress`` event; :class:`~redkeep.errors.LeaseLost` when that claim is stale.
        Handlers call :func:`redkeep.queue.progress.progress` instead."""
        from redkeep.errors import LeaseLost

        text = encode_progress(value)
        if not await self._progress(str(job_id), int(token), text):
            raise LeaseLost(f"job {job_id!r} is no longer held by this attempt: progress dropped")

    # -- shared by the backends ----------------------------------------------------------------
    async def _wait_by_polling(self, job_id: str) -> Job:
        """``wait`` for transports without blocking commands: reads with back-off (50 ms
        doubling to 1 s)."""
        delay = 0.05
        while True:
            job = await self.get_job(job_id)
            if job is None:
                raise JobNotFound(f"no job {job_id!r} in queue {self.name!r}")
            if job.finished:
                return job
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    # -- backend hooks -------------------------------------------------------------------------
    if TYPE_CHECKING:  # JobQueue's

        async def get_job(self, job_id: str) -> Job | None: ...

    @abstractmethod
    def _events(self, since: str | None) -> AsyncIterator[JobEvent]: ...

    @abstractmethod
    async def _read_events(self, since: str | None, limit: int) -> list[JobEvent]: ...

    @abstractmethod
    async def _last_event_id(self) -> str: ...

    @abstractmethod
    async def _job_events(self, job_id: str, limit: int) -> list[JobEvent]: ...

    @abstractmethod
    async def _wait(self, job_id: str) -> Job: ...

    @abstractmethod
    async def _throughput(self, minutes: int) -> list[ThroughputPoint]: ...

    @abstractmethod
    async def _events_config(self) -> EventsConfig: ...

    @abstractmethod
    async def _set_events_config(self, config: EventsConfig) -> None: ...

    @abstractmethod
    async def _progress(self, job_id: str, token: int, text: str) -> bool: ...


def _valid_event_id(value: object) -> bool:
    if not isinstance(value, str):
        return False
    ms, _, seq = value.partition("-")
    return ms.isdigit() and (seq == "" or seq.isdigit()) and len(value) <= 41


def now_ms() -> int:
    """This process's clock in ms (the memory backend's event times)."""
    return math.floor(time.time() * 1000)
