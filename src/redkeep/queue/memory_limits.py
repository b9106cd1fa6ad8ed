"""Flow control of :class:`~redkeep.queue.memory.MemoryJobQueue`: the hooks of
:class:`~redkeep.queue.limits.FlowControlMixin` (one event loop: each hook is atomic)."""

from __future__ import annotations

import asyncio

__all__ = ["MemoryLimits"]


class MemoryLimits:
    """Mixin for :class:`~redkeep.queue.memory.MemoryJobQueue`."""

    _paused: bool = False
    _event: asyncio.Event

    async def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        if not paused:
            self._event.set()  # idle workers claim at once

    async def _is_paused(self) -> bool:
        return self._paused
