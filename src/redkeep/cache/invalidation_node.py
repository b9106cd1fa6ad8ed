"""The tracking connection of :class:`~redkeep.cache.invalidation.InvalidationListener` to one
Redis primary: ``CLIENT TRACKING ... BCAST`` redirected to itself, ``SUBSCRIBE`` to
:data:`CHANNEL`, then reading invalidations and the replies of its freshness PINGs; it reconnects
with capped, jittered backoff."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from redis.asyncio import ConnectionPool

if TYPE_CHECKING:
    from redkeep.cache.invalidation import InvalidationListener

__all__ = ["CHANNEL", "TrackingNode", "cancelling"]

log = logging.getLogger("redkeep.cache")

CHANNEL = "__redis__:invalidate"
"""The channel Redis publishes tracking invalidations on (RESP2 redirect mode)."""


class TrackingNode:
    """The tracking connection to one Redis primary."""

    def __init__(self, owner: InvalidationListener, pool: ConnectionPool, where: str) -> None:
        self.owner = owner
        self.pool: Any = pool  # redis-py's make_connection() is untyped
        self.where = where
        self.up = False
        self.reached_up = False
        self.acked_at = 0.0
        """Monotonic send time of the newest PING whose reply was read."""
        self._sent: collections.deque[float] = collections.deque()
        self._conn: Any = None

    async def run(self) -> None:
        """Connect, track, read until the connection fails; forever, with backoff."""
        delay = 0.0
        while True:
            if delay:
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            self.reached_up = False
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.owner.closed or cancelling():
                    raise asyncio.CancelledError from None  # (the finally disconnects)
                # the first failure after being up is news; repeats during an outage are not
                self.owner.lost(self.where, exc, news=self.reached_up or not self.owner.losses)
            finally:
                await self._disconnect()
            if self.reached_up:
                delay = 0.0  # it was up: retry at once, then back off
            else:
                delay = min(max(delay * 2, self.owner.retry_base_delay), self.owner.retry_max_delay)

    async def _session(self) -> None:
        owner = self.owner
        conn = self._conn = self.pool.make_connection()
        async with asyncio.timeout(owner.connect_timeout + owner.command_timeout):
            await conn.connect()
            await conn.send_command("CLIENT", "ID")
            client_id = await conn.read_response()
            await conn.send_command(
                "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", owner.prefix
            )
            await conn.read_response()
            sent = time.monotonic()
            await conn.send_command("SUBSCRIBE", CHANNEL)
            await conn.read_response()
        # Anything an L1 holds predates this subscription: drop it, then trust the channel.
        owner.drop_all()
        self._sent.clear()
        self.acked_at = sent
        self.up = self.reached_up = True
        owner.connected(self)  # recomputes fresh_until
        pinger = asyncio.get_running_loop().create_task(self._ping_loop())
        try:
            while True:
                self._handle(await conn.read_response())
        finally:
            self.up = False
            owner.recompute()
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger

    def _handle(self, reply: Any) -> None:
        if not isinstance(reply, list) or not reply:
            return
        kind = reply[0]
        if kind == "message" and len(reply) == 3:
            self.owner.received(reply[2])
        elif kind == "pong" and self._sent:
            self.acked_at = self._sent.popleft()
            self.owner.recompute()
            self.owner.progressed()

    async def _ping_loop(self) -> None:
        owner = self.owner
        try:
            while True:
                await asyncio.sleep(owner.heartbeat)
                now = time.monotonic()
                if now - self.acked_at > owner.dead_after:
                    log.warning(
                        "cache invalidation: %s has not answered for %.1fs; reconnecting",
                        self.where,
                        now - self.acked_at,
                    )
                    break
                self._sent.append(now)
                await self._conn.send_command("PING")
        except Exception:
            log.debug("cache invalidation: PING on %s failed", self.where, exc_info=True)
        await self._disconnect()  # the reader fails and the node reconnects

    def ping_now(self) -> float:
        """Send a PING at once; returns its send time (``acked_at`` reaches it on the reply)."""
        now = time.monotonic()
        if self.up and self._conn is not None:
            self._sent.append(now)
            task = asyncio.get_running_loop().create_task(self._conn.send_command("PING"))
            task.add_done_callback(_ignore_result)
        return now

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        self.up = False
        self.owner.recompute()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect()


def cancelling() -> bool:
    """True when the current task is being cancelled: redis-py may turn a cancellation that
    races a dead socket into a ConnectionError, which must still stop the loop."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _ignore_result(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a failed PING shows up as a lost connection in the reader
