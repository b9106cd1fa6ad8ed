"""The ``max_connections`` bound of the RESP transports: operations on connections of their own
(mux: blocking pops, transactions, WAIT; redis-py: every operation) each hold one slot, and a
caller waits up to ``command_timeout`` for a free one (redis-py's pools raise instead)."""

from __future__ import annotations

import asyncio

from redkeep.errors import BackendTimeout, BackendUnavailable

__all__ = ["PoolSlots"]

_POOL_EXHAUSTED = "redis connection pool exhausted: no connection became free"


class PoolSlots:
    """Mixin: ``_slots`` (a semaphore of ``_max_connections``) taken by :meth:`_acquire`."""

    command_timeout: float
    _max_connections: int
    _slots: asyncio.Semaphore

    def _is_closed(self) -> bool:
        raise NotImplementedError

    @property
    def pool_in_use(self) -> int | None:
        """Operations holding one of the ``max_connections`` slots right now."""
        free = getattr(self._slots, "_value", None)
        return None if free is None else self._max_connections - int(free)

    async def _acquire(self) -> None:
        """Take a slot, waiting up to ``command_timeout`` (then BackendTimeout); release it
        with ``_slots.release()``."""
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns without suspending
            return
        try:
            async with asyncio.timeout(self.command_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise BackendTimeout(_POOL_EXHAUSTED) from None
        if self._is_closed():  # closed while this caller waited
            self._slots.release()
            raise BackendUnavailable("redis client is closed")
