"""Events, ``wait``, progress and counters of :class:`~redkeep.queue.redis.RedisJobQueue`.

The events are written by the queue's scripts (``scripts/lib/events.lua``); this module reads
them (``XRANGE``, the shared :class:`~redkeep.queue.stream.StreamListener`), stores progress
(``progress.lua``, fenced by the attempt's token) and the per-queue events switch
(``meta.events``: the stream's bound, ``0`` = off; absent = the default bound).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from redkeep.errors import JobNotFound
from redkeep.queue import scripts
from redkeep.queue.events import (
    DEFAULT_MAX_EVENTS,
    EventsConfig,
    JobEvent,
    ThroughputPoint,
    throughput_points,
)
from redkeep.queue.stream import StreamListener, event_key, listener_for, parse_entries

if TYPE_CHECKING:
    from redkeep.queue.job import Job
    from redkeep.queue.keys import QueueKeys
    from redkeep.redis.base import RedisClient

__all__ = ["RedisEvents"]

PAGE = 500
SAFETY_RECHECK = 5.0
"""A waiter re-reads its job this often in case its finish event was trimmed before the
listener read it (a log far smaller than the load) or the listener was cut off."""
JOB_EVENTS_SCAN = 10_000


class RedisEvents:
    """Mixin for :class:`~redkeep.queue.redis.RedisJobQueue` (uses its client, keys, scripts)."""

    client: RedisClient
    keys: QueueKeys
    name: str

    if TYPE_CHECKING:  # provided by RedisJobQueue and JobQueue

        async def _run(self, script: scripts.QueueScript, args: Sequence[Any]) -> Any: ...
        async def register(self) -> None: ...
        async def get_job(self, job_id: str) -> Job | None: ...
        async def _wait_by_polling(self, job_id: str) -> Job: ...

    def _listener(self) -> StreamListener:
        return listener_for(self.client, self.keys.events)

    async def _read_events(self, since: str | None, limit: int) -> list[JobEvent]:
        await self.register()
        start = "-" if since is None else f"({since}"
        reply = await self.client.execute("XRANGE", self.keys.events, start, "+", "COUNT", limit)
        return parse_entries(reply)

    async def _last_event_id(self) -> str:
        await self.register()
        last = await self.client.execute("XREVRANGE", self.keys.events, "+", "-", "COUNT", 1)
        return str(last[0][0]) if last else "0-0"

    async def _events(self, since: str | None) -> AsyncIterator[JobEvent]:
        await self.register()
        listener = self._listener()
        await listener.start()
        sub = listener.subscribe()
        try:
            last = sub.start if since is None else since
            catch_up = since is not None
            while True:
                if catch_up or sub.lagged:
                    sub.lagged = False
                    while True:  # read the stream from `last` until it is drained
                        page = await self._read_events(last, PAGE)
                        for event in page:
                            yield event
                            last = event.id
                        if len(page) < PAGE:
                            break
                    catch_up = False
                batch = await sub.batches.get()
                mark = event_key(last)
                for event in batch:
                    if event_key(event.id) > mark:
                        yield event
                        last = event.id
        finally:
            listener.unsubscribe(sub)

    async def _job_events(self, job_id: str, limit: int) -> list[JobEvent]:
        reply = await self._run(scripts.JOB_EVENTS, [job_id, JOB_EVENTS_SCAN, limit])
        return list(reversed(parse_entries(reply)))

    async def _wait(self, job_id: str) -> Job:
        if not self.client.capabilities.blocking:
            return await self._wait_by_polling(job_id)
        await self.register()
        listener = self._listener()
        await listener.start()
        # Registered before the job is read, so that no finish after the read goes unseen; the
        # waits entry makes the scripts stream the finish even with events off.
        await self.client.hset(self.keys.waits, {job_id: 1})
        while True:
            fut = listener.watch(job_id)
            try:
                job = await self.get_job(job_id)
                if job is None:
                    await self.client.hdel(self.keys.waits, job_id)
                    raise JobNotFound(f"no job {job_id!r} in queue {self.name!r}")
                if job.finished:
                    return job
                await asyncio.wait([fut], timeout=SAFETY_RECHECK)
            finally:
                listener.unwatch(job_id, fut)

    async def _throughput(self, minutes: int) -> list[ThroughputPoint]:
        await self.register()
        now = await self.client.time()
        counters = await self.client.hgetall(self.keys.throughput)
        return throughput_points(counters, int(now * 1000), minutes)

    async def _events_config(self) -> EventsConfig:
        await self.register()
        raw = await self.client.hget(self.keys.meta, "events")
        bound = int(raw) if raw else DEFAULT_MAX_EVENTS
        stored = await self.client.hget(self.keys.meta, "events_max")
        if bound == 0:
            return EventsConfig(False, int(stored) if stored else DEFAULT_MAX_EVENTS)
        return EventsConfig(True, bound)

    async def _set_events_config(self, config: EventsConfig) -> None:
        await self.register()
        bound = config.max_events if config.enabled else 0
        await self.client.hset(self.keys.meta, {"events": bound, "events_max": config.max_events})

    async def _progress(self, job_id: str, token: int, text: str) -> bool:
        return bool(await self._run(scripts.PROGRESS, [job_id, token, text]))
