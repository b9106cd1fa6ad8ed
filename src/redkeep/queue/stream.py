"""One reader per process of a queue's event stream, shared by every ``wait()`` and
``events()`` of that queue.

Why a shared listener: ``wait()`` must wake within milliseconds of a job finishing without
polling, and a thousand concurrent waits must not hold a thousand connections. The finish of
a job is already in the queue's event stream (written by the same script as the change, and
written for an awaited job even with events off: ``scripts/lib/events.lua``), so one task per
process and queue reads the stream with ``XREAD BLOCK`` on one connection and resolves the
waiters of each finished job by id, and fans the events out to ``events()`` subscribers.
Pub/sub would need a second notification path in every finishing script (and ``PUBLISH`` is
broadcast to every node of a Cluster); a blocking pop per job would need a key per job, which
the key rule (every key a script touches is a fixed key of the queue) forbids.

Without blocking commands (Upstash REST) the listener reads with ``XRANGE`` and an adaptive
pause (50 ms doubling to 1 s while nothing arrives). The listener starts with its first user
and stops once it has had none for :data:`IDLE_STOP` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

from redkeep.errors import scrub
from redkeep.queue.events import JobEvent, event_from_fields, is_finish

__all__ = ["IDLE_STOP", "StreamListener", "Subscription", "listener_for", "parse_entries"]

log = logging.getLogger("redkeep.queue.events")

BLOCK_MS = 1000
COUNT = 1000
IDLE_STOP = 5.0
SUBSCRIBER_BACKLOG = 200  # batches a slow events() consumer may fall behind before it re-reads
_POLL_MIN, _POLL_MAX = 0.05, 1.0


def event_key(event_id: str) -> tuple[int, int]:
    """A stream id as a tuple that sorts like the stream."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def parse_entries(reply: Any) -> list[JobEvent]:
    """Events of an ``XRANGE``-style reply: ``[[id, [field, value, ...]], ...]``."""
    out = []
    for entry in reply or ():
        event_id, flat = str(entry[0]), entry[1] or []
        fields = {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
        out.append(event_from_fields(event_id, fields))
    return out


class Subscription:
    """Events handed to one ``events()`` iterator; ``lagged`` when it fell behind so far that
    batches were dropped (it then re-reads the stream from its last id)."""

    def __init__(self, position: str) -> None:
        self.start = position
        self.batches: asyncio.Queue[list[JobEvent]] = asyncio.Queue(SUBSCRIBER_BACKLOG)
        self.lagged = False

    def push(self, batch: list[JobEvent]) -> None:
        try:
            self.batches.put_nowait(batch)
        except asyncio.QueueFull:
            self.lagged = True


class StreamListener:
    """Reads the stream ``key`` and resolves waiters and subscribers (see the module doc)."""

    def __init__(self, client: Any, key: str) -> None:
        self.client = client
        self.key = key
        self.position = "0-0"
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._subs: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[None] | None = None
        self._idle_since: float | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Learn the stream's current end (once) and start reading after it. A waiter that
        registers after this returns cannot miss a later event."""
        if self.running:
            return
        if self._starting is None or self._starting.done():
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        if self.running:
            return
        last = await self.client.execute("XREVRANGE", self.key, "+", "-", "COUNT", 1)
        self.position = str(last[0][0]) if last else "0-0"
        self._idle_since = None
        self._task = asyncio.create_task(self._loop(), name=f"redkeep-events:{self.key}")

    def watch(self, job_id: str) -> asyncio.Future[None]:
        """A future resolved when an event says ``job_id`` finished."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, set()).add(fut)
        return fut

    def unwatch(self, job_id: str, fut: asyncio.Future[None]) -> None:
        found = self._waiters.get(job_id)
        if found is not None:
            found.discard(fut)
            if not found:
                del self._waiters[job_id]

    def subscribe(self) -> Subscription:
        sub = Subscription(self.position)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    @property
    def users(self) -> int:
        return len(self._waiters) + len(self._subs)

    async def _read(self, poll: float) -> list[JobEvent]:
        if self.client.capabilities.blocking:
            reply = await self.client.execute(
                "XREAD", "COUNT", COUNT, "BLOCK", BLOCK_MS, "STREAMS", self.key, self.position
            )
            return parse_entries(reply[0][1]) if reply else []
        reply = await self.client.execute(
            "XRANGE", self.key, f"({self.position}", "+", "COUNT", COUNT
        )
        events = parse_entries(reply)
        if not events:
            await asyncio.sleep(poll)
        return events

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        poll, failures = _POLL_MIN, 0
        while True:
            if self.users == 0:
                now = loop.time()
                if self._idle_since is None:
                    self._idle_since = now
                elif now - self._idle_since >= IDLE_STOP:
                    self._task = None
                    return
            else:
                self._idle_since = None
            try:
                events = await self._read(poll)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.users == 0:  # nobody is listening (e.g. the client was closed)
                    self._task = None
                    return
                failures += 1
                if failures == 1:
                    log.warning("event stream %s: read failed (%s); retrying", self.key,
                                scrub(str(exc)))  # fmt: skip
                await asyncio.sleep(min(0.1 * 2**failures, 2.0))
                continue
            failures = 0
            poll = _POLL_MIN if events else min(poll * 2, _POLL_MAX)
            if events:
                self.position = events[-1].id
                self._dispatch(events)

    def _dispatch(self, events: list[JobEvent]) -> None:
        if self._waiters:
            for event in events:
                futs = self._waiters.get(event.job_id)
                if futs and is_finish(event):
                    for fut in futs:
                        if not fut.done():
                            fut.set_result(None)
        for sub in list(self._subs):
            sub.push(events)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


_LISTENERS: weakref.WeakKeyDictionary[Any, dict[str, StreamListener]] = weakref.WeakKeyDictionary()


def listener_for(client: Any, key: str, factory: Callable[..., StreamListener] = StreamListener
                 ) -> StreamListener:  # fmt: skip
    """The process's listener of stream ``key`` over ``client`` (created on first use)."""
    per_client = _LISTENERS.get(client)
    if per_client is None:
        per_client = _LISTENERS[client] = {}
    found = per_client.get(key)
    if found is None:
        found = per_client[key] = factory(client, key)
    return found
