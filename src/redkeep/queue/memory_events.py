"""Events, ``wait``, progress and counters of :class:`~redkeep.queue.memory.MemoryJobQueue`.

:class:`EventLog` is the in-process twin of ``scripts/lib/events.lua``: the memory queue calls
:meth:`EventLog.record` at each status change, with the same event names, bound and per-minute
counters as the Redis scripts; waiters are futures resolved by the finishing change itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING

from redkeep.errors import JobNotFound
from redkeep.queue.events import (
    DEFAULT_MAX_EVENTS,
    WINDOW_MINUTES,
    EventsConfig,
    JobEvent,
    ThroughputPoint,
    now_ms,
    throughput_points,
)
from redkeep.queue.job import FINISHED, Job, JobStatus, decode_value

if TYPE_CHECKING:
    pass

__all__ = ["EventLog", "MemoryEvents"]

_FINISHED = {s.value for s in FINISHED}


class EventLog:
    """A bounded in-memory event log with stream-like ids (``<ms>-<seq>``)."""

    def __init__(self) -> None:
        self.config = EventsConfig()
        self.entries: deque[JobEvent] = deque(maxlen=DEFAULT_MAX_EVENTS)
        self._last = (0, 0)
        self._changed: asyncio.Future[None] | None = None
        self.waiters: dict[str, set[asyncio.Future[None]]] = {}
        self.counters: dict[str, str] = {}

    def configure(self, config: EventsConfig) -> None:
        self.config = config
        self.entries = deque(self.entries, maxlen=config.max_events)

    def _next_id(self) -> str:
        ms, seq = now_ms(), 0
        if ms <= self._last[0]:
            ms, seq = self._last[0], self._last[1] + 1
        self._last = (ms, seq)
        return f"{ms}-{seq}"

    def append(self, job_id: str, name: str, data: dict[str, object], force: bool = False) -> None:
        if not self.config.enabled and not force:
            return
        event_id = self._next_id()
        self.entries.append(JobEvent(event_id, job_id, name, self._last[0] / 1000.0, data))
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)

    def record(self, job_id: str, old: str, new: str) -> None:
        """Job ``job_id`` moved from status ``old`` ('' for a new or restored job) to ``new``."""
        name, retry = new, None
        if new == "waiting" and old == "":
            name = "enqueued"
        elif new == "delayed" and old == "active":
            name, retry = "failed", True
        elif new == "failed":
            retry = False
        elif old == "" and new in ("active", "delayed", "blocked"):
            self.append(job_id, "enqueued", {})
        data: dict[str, object] = {"from": old} if old else {}
        if retry is not None:
            data["will_retry"] = retry
        waited = new in _FINISHED and job_id in self.waiters
        self.append(job_id, name, data, force=waited)
        if waited:
            for fut in self.waiters.pop(job_id):
                if not fut.done():
                    fut.set_result(None)
        if old and new in ("completed", "failed"):
            self._count("c" if new == "completed" else "f")

    def _count(self, kind: str) -> None:
        minute = now_ms() // 60_000
        slot = minute % WINDOW_MINUTES
        if self.counters.get(f"m{slot}") != str(minute):
            self.counters.update({f"m{slot}": str(minute), f"c{slot}": "0", f"f{slot}": "0"})
        self.counters[f"{kind}{slot}"] = str(int(self.counters[f"{kind}{slot}"]) + 1)

    def after(self, since: str | None) -> list[JobEvent]:
        if since is None:
            return list(self.entries)
        mark = _key(since)
        return [e for e in self.entries if _key(e.id) > mark]

    async def changed(self) -> None:
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._changed)


def _key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class MemoryEvents:
    """Mixin for :class:`~redkeep.queue.memory.MemoryJobQueue` (uses its ``_log`` and
    ``_jobs``)."""

    name: str
    _log: EventLog
    _jobs: dict[str, Job]

    async def _read_events(self, since: str | None, limit: int) -> list[JobEvent]:
        return self._log.after(since)[:limit]

    async def _last_event_id(self) -> str:
        return self._log.entries[-1].id if self._log.entries else "0-0"

    async def _events(self, since: str | None) -> AsyncIterator[JobEvent]:
        last = since
        if last is None:
            last = self._log.entries[-1].id if self._log.entries else "0-0"
        while True:
            for event in self._log.after(last):
                yield event
                last = event.id
            await self._log.changed()

    async def _job_events(self, job_id: str, limit: int) -> list[JobEvent]:
        return [e for e in self._log.entries if e.job_id == job_id][-limit:]

    async def _wait(self, job_id: str) -> Job:
        while True:
            job = self._jobs.get(job_id)
            if job is None:
                raise JobNotFound(f"no job {job_id!r} in queue {self.name!r}")
            if job.status in FINISHED:
                return job
            fut = asyncio.get_running_loop().create_future()
            self._log.waiters.setdefault(job_id, set()).add(fut)
            try:
                await fut
            finally:
                found = self._log.waiters.get(job_id)
                if found is not None:
                    found.discard(fut)
                    if not found:
                        with contextlib.suppress(KeyError):
                            del self._log.waiters[job_id]

    async def _throughput(self, minutes: int) -> list[ThroughputPoint]:
        return throughput_points(self._log.counters, now_ms(), minutes)

    async def _events_config(self) -> EventsConfig:
        return self._log.config

    async def _set_events_config(self, config: EventsConfig) -> None:
        self._log.configure(config)

    async def _progress(self, job_id: str, token: int, text: str) -> bool:
        job = self._jobs.get(job_id)
        if job is None or job.status != JobStatus.ACTIVE or job.token != token:
            return False
        value = decode_value(text, "progress")
        if job.progress != value:
            self._jobs[job_id] = replace(job, progress=value)
            self._log.append(job_id, "progress", {"progress": value})
        return True
