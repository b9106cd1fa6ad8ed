"""What the dashboard's pages show, read from the services without scanning job keys.

The overview reads each queue's counts (one pipelined call of ZCARDs per queue, concurrently)
and the names from the queue registry set; job lists page through a status's sorted set;
nothing here iterates over job keys. A backend error in one part becomes a message on the page
(the caches and their breaker still show while Redis is down).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redkeep.errors import RedkeepError, scrub
from redkeep.names import is_valid_name
from redkeep.queue.events import ThroughputPoint
from redkeep.queue.job import FINISHED, Job, JobStatus
from redkeep.queue.redis import list_queue_names
from redkeep.queue.schedules import Schedule
from redkeep.web.ui.limits import duration, queue_limits

if TYPE_CHECKING:
    from redkeep.services import Services

__all__ = [
    "MAX_OVERVIEW_QUEUES",
    "NAME_SCAN_LIMIT",
    "RETRY_ALL_LIMIT",
    "THROUGHPUT_MINUTES",
    "CacheRow",
    "JobPage",
    "QueueRow",
    "ScheduleRow",
    "actions_for",
    "cache_rows",
    "job_page",
    "problem_text",
    "queue_names",
    "queue_rows",
    "retry_failed",
    "schedule_rows",
]

MAX_OVERVIEW_QUEUES = 500
"""Queues the overview lists at most (sorted by name)."""
NAME_SCAN_LIMIT = 2000
"""Jobs a search by handler name looks through per page (it filters a status's list)."""
RETRY_ALL_LIMIT = 10_000
"""Failed jobs one "retry all failed" sends back at most."""
THROUGHPUT_MINUTES = 15
"""Minutes of completed/failed counters the overview charts."""
STATUSES = tuple(JobStatus)


def problem_text(exc: BaseException) -> str:
    """A one-line, secret-free description of a backend error for a page."""
    return f"{type(exc).__name__}: {scrub(str(exc))}" if str(exc) else type(exc).__name__


@dataclass
class QueueRow:
    """One queue on the overview: counts per status (None when they could not be read), its
    paused state and its completed/failed jobs per minute over :data:`THROUGHPUT_MINUTES`."""

    name: str
    counts: dict[str, int] | None
    problem: str | None = None
    paused: bool | None = None
    throughput: list[ThroughputPoint] | None = None
    limits: str | None = None
    """Rate and group limits in words (:func:`~redkeep.web.ui.limits.limits_text`)."""


@dataclass
class CacheRow:
    """One cache opened by this service: its counters in this process and where it reads."""

    name: str
    backend: str
    mode: str
    hits: int
    misses: int
    hit_ratio: float | None
    errors: int


async def queue_names(services: Services) -> list[str]:
    """Queues known to the backend (the registry set on Redis) and opened by this service."""
    names = set(services.queue_names())
    if services.client is not None:
        names.update(await list_queue_names(services.client, services.settings.key_prefix))
    return sorted(n for n in names if is_valid_name(n))


async def queue_rows(services: Services) -> tuple[list[QueueRow], int, str | None]:
    """Overview rows (at most :data:`MAX_OVERVIEW_QUEUES`), the number of queues, and why the
    list is incomplete (None when it is not)."""
    try:
        names = await queue_names(services)
    except RedkeepError as exc:
        return [], 0, problem_text(exc)
    shown = names[:MAX_OVERVIEW_QUEUES]
    results = await asyncio.gather(
        *(_queue_row(services, n) for n in shown), return_exceptions=True
    )
    rows: list[QueueRow] = []
    problem = None
    for name, result in zip(shown, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            problem = problem_text(result)
            rows.append(QueueRow(name, None, problem))
        else:
            rows.append(result)
    return rows, len(names), problem


async def _queue_row(services: Services, name: str) -> QueueRow:
    """A queue's row. The counts come first (on Redis they register the transient view once),
    then the paused flag, the counters and the limits together."""
    queue = services.queue_view(name)
    counts = await queue.counts()
    paused, throughput, limits = await asyncio.gather(
        queue.is_paused(), queue.throughput(THROUGHPUT_MINUTES), queue_limits(queue)
    )
    return QueueRow(name, counts, paused=paused, throughput=throughput, limits=limits)


def cache_rows(services: Services) -> list[CacheRow]:
    """The caches this service has opened (counters are per process, since it started)."""
    manager = services.caches
    if manager is None:
        return []
    rows = []
    for name in manager.names():
        cache = manager.get(name)
        stats = cache.stats()
        reads = stats.hits + stats.misses
        rows.append(
            CacheRow(
                name=name,
                backend=manager.backend_of(name),
                mode=str(getattr(cache, "mode", manager.backend_of(name))),
                hits=stats.hits,
                misses=stats.misses,
                hit_ratio=stats.hits / reads if reads else None,
                errors=stats.errors,
            )
        )
    return rows


@dataclass
class JobPage:
    """One page of a queue's jobs of one status, optionally only those of one handler name."""

    status: JobStatus
    offset: int
    limit: int
    jobs: list[Job]
    next_offset: int | None
    name: str | None = None
    scanned: int = 0
    notes: list[str] = field(default_factory=list)


async def job_page(
    services: Services,
    queue: str,
    status: JobStatus,
    offset: int,
    limit: int,
    name: str | None = None,
) -> JobPage:
    """Jobs of ``status`` from ``offset``. With ``name`` the list is filtered: up to ``limit``
    matches among the next :data:`NAME_SCAN_LIMIT` jobs; ``next_offset`` continues after the
    last job looked at."""
    q = services.queue_view(queue)
    if not name:
        jobs = await q.list_jobs(status, offset, limit + 1)
        more = len(jobs) > limit
        return JobPage(status, offset, limit, jobs[:limit], offset + limit if more else None)
    found: list[Job] = []
    position = offset
    end = offset + NAME_SCAN_LIMIT
    exhausted = False
    while len(found) < limit and position < end:
        batch = await q.list_jobs(status, position, min(500, end - position))
        if not batch:
            exhausted = True
            break
        for job in batch:
            position += 1
            if job.name == name:
                found.append(job)
                if len(found) == limit:
                    break
    page = JobPage(status, offset, limit, found, None if exhausted else position, name)
    page.scanned = position - offset
    if page.next_offset is not None and len(found) < limit:
        page.notes.append(
            f"looked through {page.scanned} {status.value} jobs; the search goes on from job "
            f"{position + 1}"
        )
    return page


async def retry_failed(services: Services, queue: str) -> tuple[int, bool]:
    """Send failed jobs of ``queue`` back to waiting (:meth:`JobQueue.retry_failed`, in
    batches); returns how many and whether failed jobs remain (at most
    :data:`RETRY_ALL_LIMIT` per call)."""
    q = services.queue_view(queue)
    moved = await q.retry_failed(limit=RETRY_ALL_LIMIT)
    return moved, bool(await q.list_jobs(JobStatus.FAILED, 0, 1))


@dataclass
class ScheduleRow:
    """One schedule on the schedules page, with how it runs in words."""

    schedule: Schedule
    timing: str


def _timing(s: Schedule) -> str:
    if s.cron is not None:
        return f"cron {s.cron}"
    return f"every {duration(s.every or 0.0)}"


async def schedule_rows(
    services: Services, queue: str | None = None
) -> tuple[list[ScheduleRow], str | None]:
    """The schedules of ``queue`` (None: of every queue the overview lists), by queue then id,
    and why some could not be read (None when all could)."""
    try:
        names = [queue] if queue else (await queue_names(services))[:MAX_OVERVIEW_QUEUES]
    except RedkeepError as exc:
        return [], problem_text(exc)
    results = await asyncio.gather(
        *(services.queue_view(n).list_schedules() for n in names), return_exceptions=True
    )
    rows: list[ScheduleRow] = []
    problem = None
    for result in results:
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            problem = problem_text(result)
        else:
            rows.extend(ScheduleRow(s, _timing(s)) for s in result)
    return rows, problem


def actions_for(job: Job) -> list[str]:
    """The actions the job page offers for ``job``."""
    actions = []
    if job.status == JobStatus.FAILED:
        actions.append("retry")
    if job.status not in FINISHED:
        actions.append("cancel")
    if job.status != JobStatus.ACTIVE:
        actions.append("delete")
    return actions
