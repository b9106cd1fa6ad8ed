"""A queue's flow-control limits in words, for the overview and the queue page.

The rate limit comes from ``queue.get_rate_limit()``. Per-group limits
(``queue.get_group_limit()``, issue 16) are read when the queue has that method, so they show
by themselves once it exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redkeep.queue.base import JobQueue
    from redkeep.queue.limits import RateLimit

__all__ = ["duration", "limits_text", "queue_limits"]


def duration(seconds: float) -> str:
    """``2 h``, ``15 min``, ``45 s``, ``0.5 s``: the largest whole unit."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _per(max_jobs: int, per_seconds: float) -> str:
    if per_seconds == 1:
        return f"{max_jobs} jobs/s"
    return f"{max_jobs} jobs / {duration(per_seconds)}"


def limits_text(rate: RateLimit | None, group: Any) -> str | None:
    """``50 jobs/s; per group: 2 running, 10 jobs / 1 min`` from a rate limit (``max_jobs``,
    ``per_seconds``) and a group limit (``concurrency``, ``max_jobs``, ``per_seconds``; each
    may be None), either None; None when neither limits anything."""
    parts = []
    if rate is not None:
        parts.append(_per(rate.max_jobs, rate.per_seconds))
    if group is not None:
        inner = []
        concurrency = getattr(group, "concurrency", None)
        if concurrency:
            inner.append(f"{concurrency} running")
        max_jobs, per_seconds = (
            getattr(group, "max_jobs", None),
            getattr(group, "per_seconds", None),
        )
        if max_jobs and per_seconds:
            inner.append(_per(max_jobs, per_seconds))
        if inner:
            parts.append("per group: " + ", ".join(inner))
    return "; ".join(parts) or None


async def queue_limits(queue: JobQueue) -> str | None:
    """The limits of ``queue`` in words (None: none set)."""
    rate = await queue.get_rate_limit()
    get_group = getattr(queue, "get_group_limit", None)  # not merged yet (issue 16, stage 2)
    group = await get_group() if get_group is not None else None
    return limits_text(rate, group)
