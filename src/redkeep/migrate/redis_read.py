"""Read a Redis cache namespace record by record, so that one undecodable value is reported
(and can be skipped) instead of ending the whole read."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from redkeep.cache.redis import RedisCache
from redkeep.errors import BackendResponseError, SerializationError
from redkeep.migrate.snapshot import CacheRecord, Line, SnapshotError
from redkeep.redis.base import Command

__all__ = ["glob_escape", "redis_cache_lines"]

_BATCH = 500


def glob_escape(text: str) -> str:
    """``text`` with SCAN/KEYS glob characters escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


async def redis_cache_lines(name: str, cache: RedisCache) -> AsyncIterator[Line]:
    """Every entry of ``cache`` as a record; a value that cannot be decoded as an error line."""
    batch: list[str] = []
    async for full in cache.client.scan_iter(glob_escape(cache.namespace) + "*", _BATCH):
        batch.append(full)
        if len(batch) >= _BATCH:
            async for line in _fetch(name, cache, batch):
                yield line
            batch = []
    if batch:
        async for line in _fetch(name, cache, batch):
            yield line


async def _fetch(name: str, cache: RedisCache, batch: list[str]) -> AsyncIterator[Line]:
    commands: list[Command] = []
    for full in batch:
        commands += [("GET", full), ("PTTL", full)]
    replies = await cache.client.pipeline(commands)
    now = time.time()
    cut = len(cache.namespace)
    for i, full in enumerate(batch):
        text, ms = replies[2 * i], replies[2 * i + 1]
        key = full[cut:]
        if isinstance(text, BackendResponseError):  # e.g. WRONGTYPE: not a string key
            where = f"cache {name!r} key {key!r}"
            yield Line(0, error=SnapshotError(0, f"cannot read ({text})", where))
            continue
        if text is None or isinstance(ms, Exception) or int(ms) == -2:
            continue  # expired or deleted meanwhile
        try:
            value = cache.serializer.loads(text)
        except SerializationError as exc:
            where = f"cache {name!r} key {key!r}"
            yield Line(0, error=SnapshotError(0, str(exc), where))
            continue
        expires = None if int(ms) < 0 else now + max(int(ms), 1) / 1000.0
        yield Line(0, record=CacheRecord(name, key, value, expires))
