"""A job's progress and event timeline on the dashboard's job page.

The timeline comes from :meth:`~redkeep.queue.events.EventsMixin.job_events`: a bounded scan of
the queue's event log on the server (the newest entries only). The job page refreshes every few
seconds, so the scan is cached per job and redone only when the job itself changed (status,
attempts, progress or times): an unchanged job costs one read of its record, not a scan.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from redkeep.queue.events import JobEvent

if TYPE_CHECKING:
    from redkeep.queue.base import JobQueue
    from redkeep.queue.job import Job

__all__ = ["MAX_TIMELINE", "Progress", "TimelineCache", "TimelineRow", "progress_of", "row_of"]

MAX_TIMELINE = 50
"""Newest events of a job its page shows."""
CACHED_JOBS = 256
"""Jobs whose timeline one service keeps between refreshes."""


@dataclass(frozen=True)
class Progress:
    """A job's progress as the page shows it: a bar for a number, text for a JSON value."""

    percent: float | None
    value: Any


def progress_of(job: Job) -> Progress | None:
    """The job's progress, or None when its handler never reported any."""
    value = job.progress
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Progress(round(min(max(float(value), 0.0), 100.0), 1), value)
    return Progress(None, value)


@dataclass(frozen=True)
class TimelineRow:
    """One event on the job page."""

    at: float
    event: str
    detail: str


def row_of(event: JobEvent) -> TimelineRow:
    """How ``event`` reads on the page (``from active``, ``will retry``, ``progress 40``)."""
    data = event.data
    details = []
    if "from" in data:
        details.append(f"from {data['from']}")
    if "will_retry" in data:
        details.append("will retry" if data["will_retry"] else "for good")
    if "progress" in data:
        value = data["progress"]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        details.append(f"{value}%" if number else orjson.dumps(value, default=str).decode())
    return TimelineRow(event.at, event.event, ", ".join(details))


def _version(job: Job) -> tuple[Any, ...]:
    """What changes whenever an event of the job is recorded."""
    return (job.status, job.attempts, repr(job.progress), job.started_at, job.finished_at,
            job.run_at)  # fmt: skip


class TimelineCache:
    """The timelines of recently shown jobs (least recently shown dropped first)."""

    def __init__(self, size: int = CACHED_JOBS) -> None:
        self._size = size
        self._rows: OrderedDict[tuple[str, str], tuple[tuple[Any, ...], list[TimelineRow]]] = (
            OrderedDict()
        )

    async def rows(self, queue: JobQueue, job: Job) -> list[TimelineRow]:
        """The newest :data:`MAX_TIMELINE` events of ``job``, oldest first."""
        key = (queue.name, job.id)
        version = _version(job)
        found = self._rows.get(key)
        if found is not None and found[0] == version:
            self._rows.move_to_end(key)
            return found[1]
        rows = [row_of(e) for e in await queue.job_events(job.id, MAX_TIMELINE)]
        self._rows[key] = (version, rows)
        self._rows.move_to_end(key)
        while len(self._rows) > self._size:
            self._rows.popitem(last=False)
        return rows
