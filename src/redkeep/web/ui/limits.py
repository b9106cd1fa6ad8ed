"""A queue's flow-control limits in words, for the overview and the queue page: its rate limit
(``queue.get_rate_limit()``) and the limit every group gets (``queue.get_group_limit()``)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redkeep.queue.base import JobQueue
    from redkeep.queue.limits import GroupLimit, RateLimit

__all__ = ["duration", "limits_text", "queue_limits"]


def duration(seconds: float) -> str:
    """``2 h``, ``15 min``, ``45 s``, ``0.5 s``: the largest whole unit."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _per(rate: RateLimit) -> str:
    if rate.per_seconds == 1:
        return f"{rate.max_jobs} jobs/s"
    return f"{rate.max_jobs} jobs / {duration(rate.per_seconds)}"


def limits_text(rate: RateLimit | None, group: GroupLimit | None) -> str | None:
    """``50 jobs/s; per group: 2 running, 10 jobs / 1 min``; None when nothing is limited."""
    parts = []
    if rate is not None:
        parts.append(_per(rate))
    if group is not None:
        inner = []
        if group.concurrency is not None:
            inner.append(f"{group.concurrency} running")
        if group.rate is not None:
            inner.append(_per(group.rate))
        if inner:
            parts.append("per group: " + ", ".join(inner))
    return "; ".join(parts) or None


async def queue_limits(queue: JobQueue) -> str | None:
    """The limits of ``queue`` in words (None: none set)."""
    rate, group = await asyncio.gather(queue.get_rate_limit(), queue.get_group_limit())
    return limits_text(rate, group)
