"""Blocking pops (BZPOPMIN, BLPOP...) on multiplexed connections of their own.

A blocking pop holds its connection until it returns, so it cannot share the client's
multiplexed connection; it does not change the connection's state either, so it needs no
redis-py pool connection. Each pop in flight gets a :class:`~redkeep.redis._mux.Multiplexer` of
its own, with the same lean read path and spin-then-park.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redkeep.errors import BackendUnavailable
from redkeep.redis._mux import Multiplexer

__all__ = ["BLOCKING", "BlockingLanes"]

BLOCKING = frozenset({
    "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
})  # fmt: skip
"""Blocking pops: they hold a connection but leave its state alone, so they can run on a
connection of their own (:class:`BlockingLanes`)."""


class BlockingLanes:
    """Blocking pops on connections of their own: one :class:`Multiplexer` per pop in flight,
    kept for the next pop (a worker's idle wait reuses the same one).

    A lane whose pop was cancelled or failed is closed rather than reused: the server may still
    hold the pop blocked on it. The caller bounds how many run at once. A lane spins like the
    shared connection (a job handed to an idle worker then starts without a CPU wake-up), but a
    pop that timed out does not count as a missed spin: it says nothing about the server.
    """

    def __init__(self, new_lane: Callable[[], Multiplexer]) -> None:
        self._new_lane = new_lane
        self._free: list[Multiplexer] = []
        self._busy: set[Multiplexer] = set()
        self._closed = False

    async def execute(self, *args: Any) -> Any:
        """Run one blocking command and return its reply; an error reply is raised."""
        if self._closed:
            raise BackendUnavailable("redis client is closed")
        lane = self._free.pop() if self._free else self._new_lane()
        self._busy.add(lane)
        reusable = False
        try:
            reply = await lane.execute(*args)
            reusable = True
            if reply is None:
                lane.forgive_miss()  # the pop timed out: nothing to learn about the server
            return reply
        finally:
            self._busy.discard(lane)
            if reusable and not self._closed:
                self._free.append(lane)
            else:
                lane.close()

    def close(self) -> None:
        """Close every lane; pops in flight fail with BackendUnavailable."""
        self._closed = True
        for lane in [*self._free, *self._busy]:
            lane.close()
        self._free.clear()
