"""Flow control of a queue: pause and resume (stored with the queue, obeyed by every worker).

A paused queue claims nothing: the claim step of every worker (``step.lua`` on Redis) reads the
flag atomically with its claim, so no job starts after :meth:`FlowControlMixin.pause` returns,
whatever the number of workers and processes. Jobs already claimed (running, or prefetched by a
worker) finish; enqueue, cancel, retry and the upkeep of every step (expired leases, due
delayed jobs, retention) go on. Pausing also takes back the jobs handed off to idle workers but
not yet popped (they wait again, their attempt not counted). :meth:`~FlowControlMixin.resume`
clears the flag and wakes the idle workers, which claim at once.

Backends implement ``_set_paused`` and ``_is_paused`` (:mod:`redkeep.queue.redis_limits`,
:mod:`redkeep.queue.memory_limits`).
"""

from __future__ import annotations

from abc import abstractmethod

__all__ = ["FlowControlMixin"]


class FlowControlMixin:
    """Pause and resume of :class:`~redkeep.queue.base.JobQueue` (see the module docstring)."""

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

    # -- backend hooks -------------------------------------------------------------------------
    @abstractmethod
    async def _set_paused(self, paused: bool) -> None: ...

    @abstractmethod
    async def _is_paused(self) -> bool: ...
