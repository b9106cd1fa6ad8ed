"""Where a migration writes: live stores (Redis, Upstash, memory) or a snapshot file.

Writes are idempotent: a cache entry is added only when its key is absent in the target
(``add``, i.e. ``SET NX``) and a job only when its id is unknown there (``restore_job``). Running
a migration twice, or again after an interruption, therefore copies nothing twice; records that
are already present are counted as ``existed``.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Literal

from redkeep.cache.base import CacheService
from redkeep.cache.redis import RedisCache
from redkeep.migrate.redis_read import glob_escape
from redkeep.migrate.snapshot import CacheRecord, Record, SnapshotWriter
from redkeep.queue.base import JobQueue
from redkeep.redis.base import Command
from redkeep.serialization import Serializer

__all__ = ["SnapshotTarget", "StoreTarget", "Target", "WriteResult"]

WriteResult = Literal["copied", "existed", "expired"]


class Target(abc.ABC):
    """A destination of migration records."""

    display: str = "target"
    max_concurrency: int = 32
    """Records written at the same time, at most: below a client's pool size (50 by default),
    because a full cluster pool fails a command instead of waiting."""

    @abc.abstractmethod
    async def write(self, record: Record, *, dry_run: bool = False) -> WriteResult:
        """Apply one record (or, with ``dry_run``, only tell what applying it would do)."""

    async def write_many(
        self, records: Sequence[Record], *, dry_run: bool = False
    ) -> list[WriteResult]:
        """Apply ``records`` (at most :attr:`max_concurrency` at a time); results in order."""
        slots = asyncio.Semaphore(max(1, self.max_concurrency))

        async def one(record: Record) -> WriteResult:
            async with slots:
                return await self.write(record, dry_run=dry_run)

        return list(await asyncio.gather(*(one(r) for r in records)))

    async def cache_count(self, name: str) -> int | None:
        """Entries of cache ``name`` in the target after the run (None: not countable)."""
        return None

    async def queue_counts(self, name: str) -> dict[str, int] | None:
        """Jobs per status of queue ``name`` in the target after the run."""
        return None

    async def finish(self, *, dry_run: bool = False) -> None:
        """Called once after the last record of a complete run."""
        return None

    async def close(self) -> None:
        """Release connections; an unfinished snapshot file is discarded."""
        return None


class StoreTarget(Target):
    """Caches and queues built on demand by name (``make_cache`` / ``make_queue``)."""

    def __init__(
        self,
        make_cache: Callable[[str], CacheService],
        make_queue: Callable[[str], JobQueue],
        display: str,
        on_close: Callable[[], Awaitable[None]] | None = None,
        max_concurrency: int = 32,
    ) -> None:
        self.max_concurrency = max_concurrency
        self._make_cache = make_cache
        self._make_queue = make_queue
        self._caches: dict[str, CacheService] = {}
        self._queues: dict[str, JobQueue] = {}
        self._on_close = on_close
        self.display = display

    def cache(self, name: str) -> CacheService:
        """The target cache ``name`` (created once)."""
        cache = self._caches.get(name)
        if cache is None:
            cache = self._caches[name] = self._make_cache(name)
        return cache

    def queue(self, name: str) -> JobQueue:
        """The target queue ``name`` (created once)."""
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = self._make_queue(name)
        return queue

    async def write(self, record: Record, *, dry_run: bool = False) -> WriteResult:
        if isinstance(record, CacheRecord):
            cache = self.cache(record.cache)
            remaining = record.remaining(time.time())
            if remaining is not None and remaining <= 0.001:
                return "expired"
            if dry_run:
                return "existed" if await cache.has(record.key) else "copied"
            added = await cache.add(record.key, record.value, ttl=remaining)
            return "copied" if added else "existed"
        queue = self.queue(record.queue)
        if dry_run:
            return "existed" if await queue.get_job(record.job.id) is not None else "copied"
        return "copied" if await queue.restore_job(record.job) else "existed"

    async def write_many(
        self, records: Sequence[Record], *, dry_run: bool = False
    ) -> list[WriteResult]:
        """Cache entries for Redis go out as one pipeline of ``SET NX PX`` per cache; the rest
        (jobs, other backends) record by record."""
        results: list[WriteResult | None] = [None] * len(records)
        groups: dict[str, list[int]] = {}
        rest: list[int] = []
        now = time.time()
        for i, record in enumerate(records):
            if isinstance(record, CacheRecord) and isinstance(self.cache(record.cache), RedisCache):
                remaining = record.remaining(now)
                if remaining is not None and remaining <= 0.001:
                    results[i] = "expired"
                else:
                    groups.setdefault(record.cache, []).append(i)
            else:
                rest.append(i)
        for name, indexes in groups.items():
            cache = self.cache(name)
            assert isinstance(cache, RedisCache)
            batch = [records[i] for i in indexes]
            for i, result in zip(indexes, await _pipelined_add(cache, batch, dry_run), strict=True):
                results[i] = result
        if rest:
            done = await super().write_many([records[i] for i in rest], dry_run=dry_run)
            for i, result in zip(rest, done, strict=True):
                results[i] = result
        return [r if r is not None else "existed" for r in results]

    async def cache_count(self, name: str) -> int | None:
        cache = self.cache(name)
        count = 0
        if isinstance(cache, RedisCache):  # count keys with SCAN, without reading values
            async for _ in cache.client.scan_iter(glob_escape(cache.namespace) + "*", 1000):
                count += 1
            return count
        async for _ in cache.items():
            count += 1
        return count

    async def queue_counts(self, name: str) -> dict[str, int] | None:
        return await self.queue(name).counts()

    async def close(self) -> None:
        for cache in self._caches.values():
            await cache.close()
        for queue in self._queues.values():
            await queue.close()
        if self._on_close is not None:
            await self._on_close()


async def _pipelined_add(
    cache: RedisCache, records: Sequence[Record], dry_run: bool
) -> list[WriteResult]:
    """``SET key value NX [PX ms]`` (or ``EXISTS`` for a dry run) for every record, one round
    trip; TTLs are computed right before sending. A refused write (OOM...) raises."""
    commands: list[Command] = []
    for record in records:
        assert isinstance(record, CacheRecord)
        key = cache.namespace + record.key
        if dry_run:
            commands.append(("EXISTS", key))
            continue
        command: list[str | int] = ["SET", key, cache.serializer.dumps(record.value), "NX"]
        remaining = record.remaining(time.time())
        if remaining is not None:
            command += ["PX", max(1, int(remaining * 1000 + 0.5))]
        commands.append(tuple(command))
    out: list[WriteResult] = []
    for reply in await cache.client.pipeline(commands):
        if isinstance(reply, Exception):
            raise reply
        if dry_run:
            out.append("existed" if int(reply) else "copied")
        else:
            out.append("copied" if reply is not None else "existed")
    return out


class SnapshotTarget(Target):
    """A snapshot file, written to a temporary name and renamed into place when complete.

    The file is rewritten from scratch on every run, so a repeated run gives the same file.
    """

    def __init__(self, path: str | Path, serializer: Serializer | None = None) -> None:
        self.path = Path(path)
        self.display = f"snapshot {self.path}"
        self._serializer = serializer
        self._writer: SnapshotWriter | None = None
        self._caches: dict[str, int] = {}
        self._queues: dict[str, dict[str, int]] = {}

    async def write(self, record: Record, *, dry_run: bool = False) -> WriteResult:
        if isinstance(record, CacheRecord):
            remaining = record.remaining()
            if remaining is not None and remaining <= 0.001:
                return "expired"
            self._caches[record.cache] = self._caches.get(record.cache, 0) + 1
        else:
            per = self._queues.setdefault(record.queue, {})
            per[record.job.status] = per.get(record.job.status, 0) + 1
        if not dry_run:
            if self._writer is None:
                self._writer = SnapshotWriter(self.path, self._serializer)
            self._writer.write(record)
        return "copied"

    async def cache_count(self, name: str) -> int | None:
        return self._caches.get(name, 0)

    async def queue_counts(self, name: str) -> dict[str, int] | None:
        return dict(self._queues.get(name, {}))

    async def finish(self, *, dry_run: bool = False) -> None:
        if dry_run:
            return
        if self._writer is None:
            self._writer = SnapshotWriter(self.path, self._serializer)
        self._writer.close()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.abort()  # no-op once finish() moved the file into place
