"""Flow control of :class:`~redkeep.queue.memory.MemoryJobQueue`: the hooks of
:class:`~redkeep.queue.limits.FlowControlMixin` (one event loop: each hook is atomic), and the
rate limit's sliding-window log that its step consults."""

from __future__ import annotations

import asyncio
from collections import deque

from redkeep.queue.limits import RateLimit

__all__ = ["MemoryLimits"]


class MemoryLimits:
    """Mixin for :class:`~redkeep.queue.memory.MemoryJobQueue`."""

    _paused: bool = False
    _rate: RateLimit | None = None
    _starts: deque[float]  # start times (s) in the rate limit's window, oldest first
    _event: asyncio.Event

    async def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        if not paused:
            self._event.set()  # idle workers claim at once

    async def _is_paused(self) -> bool:
        return self._paused

    async def _set_rate_limit(self, limit: RateLimit | None) -> None:
        self._rate = limit
        if limit is None:
            self._starts.clear()
        self._event.set()  # a raised or cleared limit takes effect at once

    async def _get_rate_limit(self) -> RateLimit | None:
        return self._rate

    def _rate_room(self, now: float, want: int) -> int:
        """How many of ``want`` jobs may start now (drops starts that left the window)."""
        if self._rate is None:
            return want
        per = self._rate.per_ms / 1000.0
        while self._starts and self._starts[0] <= now - per:
            self._starts.popleft()
        return min(want, max(0, self._rate.max_jobs - len(self._starts)))

    def _rate_started(self, now: float, n: int) -> None:
        if self._rate is not None:
            self._starts.extend([now] * n)

    def _rate_wait(self, now: float) -> float:
        """Seconds until the window has room again (call when it is full)."""
        if self._rate is None or not self._starts:
            return 0.001
        return max(0.001, self._starts[0] + self._rate.per_ms / 1000.0 - now)
