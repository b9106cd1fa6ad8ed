"""Flow control of a queue: pause and resume, and a rate limit (stored with the queue, obeyed
by every worker).

A paused queue claims nothing: the claim step of every worker (``step.lua`` on Redis) reads the
flag atomically with its claim, so no job starts after :meth:`FlowControlMixin.pause` returns,
whatever the number of workers and processes. Jobs already claimed (running, or prefetched by a
worker) finish; enqueue, cancel, retry and the upkeep of every step (expired leases, due
delayed jobs, retention) go on. Pausing also takes back the jobs handed off to idle workers but
not yet popped (they wait again, their attempt not counted). :meth:`~FlowControlMixin.resume`
clears the flag and wakes the idle workers, which claim at once.

A rate limit (:meth:`~FlowControlMixin.set_rate_limit`) lets at most ``max_jobs`` jobs of the
queue start in any window of ``per_seconds``, across all workers: a **sliding-window log**. The
claim step keeps the start times of the last window (one entry per start, on the server clock),
drops those older than the window and claims only as many jobs as the window has room for. A
worker the limit stops is told when the oldest start leaves the window and sleeps until then
(no polling meanwhile). The log is exact (no burst of twice the limit across a window edge, as
a fixed window or a token bucket would allow) and holds at most ``max_jobs`` entries.

A group limit (:meth:`~FlowControlMixin.set_group_limit`) applies to every group of the queue
(jobs enqueued with ``group=``): at most ``concurrency`` active jobs of one group, and at most
``max_jobs`` starts of one group per ``per_seconds`` (the same sliding window, per group).
Groups are served round-robin, whatever their sizes; priority orders the jobs of one group.

Backends implement ``_set_paused``, ``_is_paused``, ``_set_rate_limit``, ``_get_rate_limit``,
``_set_group_limit`` and ``_get_group_limit`` (:mod:`redkeep.queue.redis_limits`,
:mod:`redkeep.queue.memory_limits`).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass

from redkeep.errors import InvalidJob

__all__ = [
    "MAX_GROUP_CONCURRENCY",
    "MAX_RATE_JOBS",
    "MAX_WINDOW",
    "FlowControlMixin",
    "GroupLimit",
    "RateLimit",
    "rate_limit",
]

MAX_WINDOW = 7 * 86400.0
"""Longest rate-limit window (seconds): a week."""
MAX_RATE_JOBS = 1_000_000
"""Largest max_jobs of a rate limit (entries its window log may hold)."""


@dataclass(frozen=True)
class RateLimit:
    """At most ``max_jobs`` job starts in any window of ``per_seconds`` (sliding)."""

    max_jobs: int
    per_seconds: float

    @property
    def per_ms(self) -> int:
        """The window in whole milliseconds (how it is stored and enforced)."""
        return max(1, round(self.per_seconds * 1000))


MAX_GROUP_CONCURRENCY = 1_000_000
"""Largest concurrency of a group limit."""


@dataclass(frozen=True)
class GroupLimit:
    """The limit every group of a queue gets: at most ``concurrency`` active jobs of one group
    (None: no such limit) and at most ``rate.max_jobs`` starts of one group in any window of
    ``rate.per_seconds`` (None: no such limit)."""

    concurrency: int | None = None
    rate: RateLimit | None = None


def rate_limit(max_jobs: object, per_seconds: object, what: str = "rate limit") -> RateLimit:
    """A checked :class:`RateLimit`, or :class:`~redkeep.errors.InvalidJob` naming the bad
    field (``max_jobs`` an int from 1 to 1,000,000, ``per_seconds`` a number > 0, at most a
    week)."""
    if type(max_jobs) is not int or not 1 <= max_jobs <= MAX_RATE_JOBS:
        raise InvalidJob(f"{what}: max_jobs must be an integer from 1 to {MAX_RATE_JOBS:,}, "
                         f"got {max_jobs!r}")  # fmt: skip
    if (
        isinstance(per_seconds, bool)
        or not isinstance(per_seconds, int | float)
        or not math.isfinite(per_seconds)
        or not 0.001 <= per_seconds <= MAX_WINDOW
    ):
        raise InvalidJob(f"{what}: per_seconds must be a number from 0.001 to {MAX_WINDOW:g} "
                         f"(a week), got {per_seconds!r}")  # fmt: skip
    return RateLimit(max_jobs, float(per_seconds))


class FlowControlMixin:
    """Pause, resume and rate limit of :class:`~redkeep.queue.base.JobQueue` (see the module
    docstring)."""

    async def pause(self) -> None:
        """Stop every worker from claiming jobs of this queue until :meth:`resume`; running
        jobs finish, enqueues still work. Pausing a paused queue changes nothing."""
        await self._set_paused(True)

    async def resume(self) -> None:
        """Let workers claim again (idle ones are woken at once); a no-op unless paused."""
        await self._set_paused(False)

    async def is_paused(self) -> bool:
        """Whether the queue is paused."""
        return await self._is_paused()

    async def set_rate_limit(
        self, max_jobs: int | None, per_seconds: float | None = None
    ) -> RateLimit | None:
        """Let at most ``max_jobs`` jobs start in any window of ``per_seconds`` seconds, across
        every worker and process (a sliding window, see the module docstring); ``None``
        removes the limit. Replaces any earlier limit; the starts already in the window count
        against the new one. Returns the limit now in force. Bad values raise
        :class:`~redkeep.errors.InvalidJob` and change nothing."""
        if max_jobs is None:
            if per_seconds is not None:
                raise InvalidJob("rate limit: per_seconds given without max_jobs")
            await self._set_rate_limit(None)
            return None
        limit = rate_limit(max_jobs, per_seconds)
        await self._set_rate_limit(limit)
        return limit

    async def get_rate_limit(self) -> RateLimit | None:
        """The queue's rate limit, or None."""
        return await self._get_rate_limit()

    async def set_group_limit(
        self,
        concurrency: int | None = None,
        max_jobs: int | None = None,
        per_seconds: float | None = None,
    ) -> GroupLimit | None:
        """Limit every group of the queue (jobs enqueued with ``group=``): at most
        ``concurrency`` active jobs of one group at once, and at most ``max_jobs`` starts of one
        group in any window of ``per_seconds`` (sliding), across every worker and process. All
        None removes the limit (groups are still served round-robin). Replaces any earlier
        limit. Returns the limit now in force. Bad values raise
        :class:`~redkeep.errors.InvalidJob` naming the field and change nothing."""
        if concurrency is not None and (
            type(concurrency) is not int or not 1 <= concurrency <= MAX_GROUP_CONCURRENCY
        ):
            raise InvalidJob(f"group limit: concurrency must be an integer from 1 to "
                             f"{MAX_GROUP_CONCURRENCY:,}, got {concurrency!r}")  # fmt: skip
        rate = None
        if max_jobs is not None or per_seconds is not None:
            if max_jobs is None:
                raise InvalidJob("group limit: per_seconds given without max_jobs")
            rate = rate_limit(max_jobs, per_seconds, "group limit")
        limit = None if concurrency is None and rate is None else GroupLimit(concurrency, rate)
        await self._set_group_limit(limit)
        return limit

    async def get_group_limit(self) -> GroupLimit | None:
        """The queue's group limit, or None."""
        return await self._get_group_limit()

    # -- backend hooks -------------------------------------------------------------------------
    @abstractmethod
    async def _set_paused(self, paused: bool) -> None: ...

    @abstractmethod
    async def _is_paused(self) -> bool: ...

    @abstractmethod
    async def _set_rate_limit(self, limit: RateLimit | None) -> None: ...

    @abstractmethod
    async def _get_rate_limit(self) -> RateLimit | None: ...

    @abstractmethod
    async def _set_group_limit(self, limit: GroupLimit | None) -> None: ...

    @abstractmethod
    async def _get_group_limit(self) -> GroupLimit | None: ...
