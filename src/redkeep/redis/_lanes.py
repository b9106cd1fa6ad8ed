"""Connections of their own for work that must not share the multiplexed connection.

A blocking pop (BZPOPMIN, BLPOP...) holds its connection until it returns; a MULTI/EXEC
transaction or a write followed by ``WAIT`` needs its commands alone on one connection, in
order. None of them may block or interleave with the client's shared connection, so each runs
on a lane: a :class:`~redkeep.redis._multiplexer.Multiplexer` of its own, with the same lean
read path and spin-then-park, kept for the next such call once it has finished cleanly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redkeep.errors import BackendUnavailable
from redkeep.redis._multiplexer import Multiplexer

__all__ = ["Lanes"]

T = TypeVar("T")


class Lanes:
    """One :class:`Multiplexer` per call in flight, kept for the next call.

    A lane whose call was cancelled or failed is closed rather than reused: the server may
    still hold a pop blocked on it, or a transaction open. The caller bounds how many run at
    once. A pop that timed out does not count as a missed spin: it says nothing about the
    server.
    """

    def __init__(self, new_lane: Callable[[], Multiplexer]) -> None:
        self._new_lane = new_lane
        self._free: list[Multiplexer] = []
        self._busy: set[Multiplexer] = set()
        self._closed = False

    async def execute(self, *args: Any) -> Any:
        """Run one (blocking) command and return its reply; an error reply is raised."""

        async def pop(lane: Multiplexer) -> Any:
            reply = await lane.execute(*args)
            if reply is None:
                lane.forgive_miss()  # the pop timed out: nothing to learn about the server
            return reply

        return await self.run(pop)

    async def execute_many(
        self, commands: Sequence[Sequence[Any]], *, resend: bool | None = None
    ) -> list[Any]:
        """Run commands together, in order, on one lane; error replies come back in place."""
        return await self.run(lambda lane: lane.execute_many(commands, resend=resend))

    async def run(self, work: Callable[[Multiplexer], Awaitable[T]]) -> T:
        """``await work(lane)`` on a free lane (a new one when none is free)."""
        if self._closed:
            raise BackendUnavailable("redis client is closed")
        lane = self._free.pop() if self._free else self._new_lane()
        self._busy.add(lane)
        reusable = False
        try:
            result = await work(lane)
            reusable = True
            return result
        finally:
            self._busy.discard(lane)
            if reusable and not self._closed:
                self._free.append(lane)
            else:
                lane.close()

    def close(self) -> None:
        """Close every lane; calls in flight fail with BackendUnavailable."""
        self._closed = True
        for lane in [*self._free, *self._busy]:
            lane.close()
        self._free.clear()
