"""Flow control of :class:`~redkeep.queue.memory.MemoryJobQueue`: the hooks of
:class:`~redkeep.queue.limits.FlowControlMixin` (one event loop: each hook is atomic), and the
rate limit's sliding-window log that its step consults."""

from __future__ import annotations

import asyncio
import heapq
from collections import deque

from redkeep.queue.job import Job
from redkeep.queue.limits import GroupLimit, RateLimit

__all__ = ["MemoryGroups", "MemoryLimits"]


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


class MemoryGroups:
    """Groups of :class:`~redkeep.queue.memory.MemoryJobQueue`: per-group waiting heaps, the
    round-robin rotation of the groups that may start a job, active counts and rate windows
    (the semantics of ``scripts/lib/groups.lua``)."""

    _glimit: GroupLimit | None = None
    _gheaps: dict[str, list[tuple[int, int, str]]]  # group -> (-priority, seq, id), lazy
    _gready: dict[str, None]  # the rotation, in turn order (insertion order)
    _gactive: dict[str, int]
    _glog: dict[str, deque[float]]
    _gsleep: dict[str, float]  # group -> when its rate window has room
    _wseq: dict[str, int]
    _jobs: dict[str, Job]
    _event: asyncio.Event

    def _init_groups(self) -> None:
        self._gheaps, self._gready, self._gactive, self._glog, self._gsleep = {}, {}, {}, {}, {}

    async def _set_group_limit(self, limit: GroupLimit | None) -> None:
        self._glimit = limit
        if limit is None or limit.rate is None:
            self._glog.clear()
        for g in [*self._gsleep, *self._gactive]:
            self._gsleep.pop(g, None)
            self._group_ready(g)
        self._event.set()

    async def _get_group_limit(self) -> GroupLimit | None:
        return self._glimit

    def _group_push(self, job: Job, seq: int) -> None:
        assert job.group is not None
        heapq.heappush(self._gheaps.setdefault(job.group, []), (-job.priority, seq, job.id))
        self._group_ready(job.group)

    def _group_head(self, g: str) -> str | None:
        heap = self._gheaps.get(g)
        while heap:
            _, seq, job_id = heap[0]
            if self._wseq.get(job_id) == seq:
                return job_id
            heapq.heappop(heap)
        self._gheaps.pop(g, None)
        return None

    def _group_full(self, g: str) -> bool:
        conc = self._glimit.concurrency if self._glimit else None
        return conc is not None and self._gactive.get(g, 0) >= conc

    def _group_ready(self, g: str) -> None:
        """Put ``g`` at the back of the rotation when a job of it waits and it has room."""
        if g in self._gready or g in self._gsleep or self._group_full(g):
            return
        if self._group_head(g) is not None:
            self._gready[g] = None

    def _group_left_active(self, job: Job) -> None:
        g = job.group
        if g is None:
            return
        n = self._gactive.get(g, 0) - 1
        if n > 0:
            self._gactive[g] = n
        else:
            self._gactive.pop(g, None)
        self._group_ready(g)

    def _wake_groups(self, now: float) -> None:
        for g, at in list(self._gsleep.items()):
            if at <= now:
                del self._gsleep[g]
                self._group_ready(g)

    def _claim_groups(self, want: int, now: float) -> list[str]:
        """Ids of up to ``want`` grouped jobs taken round-robin (counted active already)."""
        rate = self._glimit.rate if self._glimit else None
        out: list[str] = []
        while len(out) < want and self._gready:
            g = next(iter(self._gready))
            del self._gready[g]
            head = self._group_head(g)
            if head is None or self._group_full(g):
                continue
            if rate is not None:
                log = self._glog.setdefault(g, deque())
                per = rate.per_ms / 1000.0
                while log and log[0] <= now - per:
                    log.popleft()
                if len(log) >= rate.max_jobs:
                    self._gsleep[g] = log[0] + per
                    continue
                log.append(now)
            heapq.heappop(self._gheaps[g])
            del self._wseq[head]
            self._gactive[g] = self._gactive.get(g, 0) + 1
            out.append(head)
            self._group_ready(g)  # to the back, if it still has a job and room
        return out
