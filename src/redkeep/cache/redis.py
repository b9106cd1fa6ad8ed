"""Redis-backed cache over any :class:`~redkeep.redis.base.RedisClient` (RESP, Cluster, Upstash).

Layout: the value of user key ``k`` in cache ``name`` is the string key
``{key_prefix}:cache:{name}:{k}`` holding the serialized value, with expiry as ``PX``
milliseconds. The cross-process ``get_or_set`` lock of that key is
``{key_prefix}:cachelock:{name}:{k}``.

User keys are used verbatim. A user key containing ``{...}`` therefore acts as a Redis Cluster
hash tag (prefix and cache name never contain braces): it only decides the slot, so keys sharing
a tag land on one node. Nothing relies on slots here: every operation touches one key, or is
split per slot by the transport (``get_many``, ``set_many``, ``delete_many``, ``clear``).

``clear()`` uses SCAN + UNLINK in batches of 500, not a namespace generation counter: a counter
would cost every read an extra lookup (or a locally cached generation that other processes cannot
see change), and would leave the old generation's keys without TTL in memory forever.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from redkeep.cache.base import TTL, CacheService, Factory
from redkeep.cache.lock import fill_with_lock
from redkeep.errors import BackendResponseError, SerializationError
from redkeep.redis.base import Command, RedisClient, Script
from redkeep.serialization import Serializer

__all__ = ["RedisCache", "list_cache_names"]

INCR_SCRIPT = Script.from_file(Path(__file__).with_name("incr.lua"))
_BATCH = 500
_now = time.perf_counter


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _px(seconds: float | None) -> int | None:
    return None if seconds is None else max(1, int(seconds * 1000 + 0.5))


class RedisCache(CacheService):
    """A cache namespace in Redis. Batch operations take one round trip.

    ``lock_timeout`` (seconds) enables the cross-process ``get_or_set`` lock; None disables it
    (single-flight within the process still applies). The client is shared and not closed by
    :meth:`close`.
    """

    def __init__(
        self,
        client: RedisClient,
        name: str = "default",
        *,
        key_prefix: str = "redkeep",
        default_ttl: TTL = None,
        max_key_length: int = 1024,
        serializer: Serializer | None = None,
        lock_timeout: float | None = None,
    ) -> None:
        super().__init__(
            name, default_ttl=default_ttl, max_key_length=max_key_length, serializer=serializer
        )
        if not key_prefix or any(c in key_prefix for c in "{}*? \t\n"):
            raise ValueError(f"invalid key_prefix {key_prefix!r}")
        if lock_timeout is not None and not lock_timeout > 0:
            raise ValueError(f"lock_timeout must be positive, got {lock_timeout!r}")
        self.client = client
        self.key_prefix = key_prefix
        self.namespace = f"{key_prefix}:cache:{self.name}:"
        """The Redis key prefix of this cache's entries."""
        self.lock_namespace = f"{key_prefix}:cachelock:{self.name}:"
        self.lock_timeout = lock_timeout
        self._loads = self.serializer.loads
        self._dumps = self.serializer.dumps

    # -- hot path ------------------------------------------------------------------------------
    async def get(self, key: str, default: Any = None) -> Any:
        """The value at ``key`` or ``default`` (one GET)."""
        if type(key) is not str or not 0 < len(key) <= self.max_key_length:
            raise self._bad_key(key)
        stats = self._stats
        start = _now()
        try:
            text = await self.client.get(self.namespace + key)
        except Exception:
            stats.errors += 1
            raise
        stats.operations += 1
        stats.op_seconds += _now() - start
        if text is None:
            stats.misses += 1
            return default
        stats.hits += 1
        return self._loads(text)

    async def set(self, key: str, value: Any, ttl: TTL = None) -> None:
        """Store ``value`` (one SET, with PX when a TTL applies)."""
        if type(key) is not str or not 0 < len(key) <= self.max_key_length:
            raise self._bad_key(key)
        text = self._dumps(value)
        px = _px(self.default_ttl if ttl is None else self._ttl(ttl))
        stats = self._stats
        start = _now()
        try:
            await self.client.set(self.namespace + key, text, px=px)
        except Exception:
            stats.errors += 1
            raise
        stats.operations += 1
        stats.sets += 1
        stats.op_seconds += _now() - start

    # -- the rest ------------------------------------------------------------------------------
    def _done(self, start: float) -> None:
        self._stats.operations += 1
        self._stats.op_seconds += _now() - start

    async def _run(self, coro: Any) -> Any:
        start = _now()
        try:
            result = await coro
        except Exception:
            self._stats.errors += 1
            raise
        self._done(start)
        return result

    async def add(self, key: str, value: Any, ttl: TTL = None) -> bool:
        """SET NX; True when stored."""
        self._check_key(key)
        text = self._dumps(value)
        px = _px(self._ttl(ttl))
        stored = bool(await self._run(self.client.set(self.namespace + key, text, px=px, nx=True)))
        if stored:
            self._stats.sets += 1
        return stored

    async def delete(self, key: str) -> bool:
        """UNLINK; True when the key existed."""
        self._check_key(key)
        removed = int(await self._run(self.client.unlink(self.namespace + key)))
        self._stats.deletes += removed
        return removed > 0

    async def has(self, key: str) -> bool:
        """EXISTS."""
        self._check_key(key)
        return int(await self._run(self.client.exists(self.namespace + key))) > 0

    async def clear(self) -> int:
        """SCAN + UNLINK this namespace in batches; returns the number of keys removed."""
        removed = 0
        batch: list[str] = []
        start = _now()
        try:
            async for full in self.client.scan_iter(_glob_escape(self.namespace) + "*", _BATCH):
                batch.append(full)
                if len(batch) >= _BATCH:
                    removed += await self.client.unlink(*batch)
                    batch.clear()
            if batch:
                removed += await self.client.unlink(*batch)
        except Exception:
            self._stats.errors += 1
            raise
        self._done(start)
        self._stats.deletes += removed
        return removed

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """One MGET (split per slot on a Cluster)."""
        checked = self._check_keys(keys)
        if not checked:
            return {}
        ns = self.namespace
        texts = await self._run(self.client.mget([ns + k for k in checked]))
        loads = self._loads
        found = {k: loads(t) for k, t in zip(checked, texts, strict=True) if t is not None}
        self._stats.hits += len(found)
        self._stats.misses += len(checked) - len(found)
        return found

    async def get_entries(self, keys: Sequence[str]) -> list[tuple[str | None, float | None]]:
        """``(encoded value | None, remaining seconds | None)`` per key, in one round trip.

        A GET and a PTTL per key, pipelined; keys are not checked (the caller did). Used by
        :class:`~redkeep.cache.tiered.TieredCache` to fill its L1 with the raw text and to
        expire an L1 entry no later than its Redis key. Counts hits and misses like ``get``.
        """
        ns = self.namespace
        commands: list[Command] = []
        for key in keys:
            commands.append(("GET", ns + key))
            commands.append(("PTTL", ns + key))
        replies = await self._run(self.client.pipeline(commands))
        entries: list[tuple[str | None, float | None]] = []
        for i in range(len(keys)):
            text, ms = replies[2 * i], replies[2 * i + 1]
            for reply in (text, ms):
                if isinstance(reply, Exception):
                    self._stats.errors += 1
                    raise reply
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            ms = int(ms)
            if text is None or ms == -2:
                entries.append((None, None))
            else:
                entries.append((text, None if ms < 0 else ms / 1000.0))
        hits = sum(1 for text, _ in entries if text is not None)
        self._stats.hits += hits
        self._stats.misses += len(entries) - hits
        return entries

    async def set_many(self, mapping: Mapping[str, Any], ttl: TTL = None) -> None:
        """Pipelined SETs in one round trip; nothing is sent if one value fails to encode."""
        px = _px(self._ttl(ttl))
        ns, dumps = self.namespace, self._dumps
        encoded = {ns + self._check_key(k): dumps(v) for k, v in mapping.items()}
        if not encoded:
            return
        await self._run(self.client.mset(encoded, px=px))
        self._stats.sets += len(encoded)

    async def delete_many(self, keys: Iterable[str]) -> int:
        """One UNLINK (split per slot on a Cluster)."""
        checked = self._check_keys(keys)
        if not checked:
            return 0
        ns = self.namespace
        removed = int(await self._run(self.client.unlink(*{ns + k for k in checked})))
        self._stats.deletes += removed
        return removed

    async def incr(self, key: str, delta: int = 1) -> int:
        """INCRBY via a script that gives a new key the default TTL."""
        self._check_key(key)
        if type(delta) is not int:
            raise TypeError(f"delta must be an int, got {type(delta).__name__}")
        px = _px(self.default_ttl)
        args: list[Any] = [delta, "" if px is None else px]
        try:
            value = await self._run(self.client.evalsha(INCR_SCRIPT, [self.namespace + key], args))
        except BackendResponseError as exc:
            text = str(exc)
            if "not an integer" in text or "overflow" in text:
                raise SerializationError(
                    f"cannot incr key {key[:40]!r}: the stored value is not a 64-bit integer "
                    "or the result overflows"
                ) from None
            raise
        self._stats.sets += 1
        return int(value)

    async def ttl(self, key: str) -> float | None:
        """PTTL in seconds; None without expiry or when absent."""
        self._check_key(key)
        ms = int(await self._run(self.client.pttl(self.namespace + key)))
        return None if ms < 0 else ms / 1000.0

    async def touch(self, key: str, ttl: TTL) -> bool:
        """PEXPIRE (or PERSIST when the resolved TTL is None); False when absent."""
        self._check_key(key)
        seconds = self._ttl(ttl)
        full = self.namespace + key
        if seconds is None:
            commands: list[Command] = [("PERSIST", full), ("EXISTS", full)]
            replies = await self._run(self.client.pipeline(commands))
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return int(replies[1]) > 0
        return bool(await self._run(self.client.pexpire(full, _px(seconds) or 1)))

    async def items(self) -> AsyncIterator[tuple[str, Any, float | None]]:
        """SCAN the namespace; values and PTTLs fetched per batch in one pipeline."""
        ns = self.namespace
        cut = len(ns)
        batch: list[str] = []
        async for full in self.client.scan_iter(_glob_escape(ns) + "*", _BATCH):
            batch.append(full)
            if len(batch) >= _BATCH:
                async for item in self._fetch(batch, cut):
                    yield item
                batch = []
        if batch:
            async for item in self._fetch(batch, cut):
                yield item

    async def _fetch(
        self, batch: list[str], cut: int
    ) -> AsyncIterator[tuple[str, Any, float | None]]:
        commands: list[Command] = []
        for full in batch:
            commands.append(("GET", full))
            commands.append(("PTTL", full))
        replies = await self.client.pipeline(commands)
        loads = self._loads
        for i, full in enumerate(batch):
            text, ms = replies[2 * i], replies[2 * i + 1]
            if text is None or isinstance(text, Exception) or isinstance(ms, Exception):
                continue  # expired or deleted meanwhile
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            ms = int(ms)
            if ms == -2:
                continue
            yield full[cut:], loads(text), (None if ms < 0 else max(ms, 1) / 1000.0)

    async def replay(
        self, values: Sequence[tuple[str, Any, float | None]], deleted: Sequence[str]
    ) -> None:
        """Write ``(key, value, remaining_ttl)`` entries and delete ``deleted`` in one round trip.

        Used by :class:`~redkeep.cache.fallback.FallbackCache` to replay an outage: a SET (with
        PX when the entry has a remaining TTL) per value and an UNLINK per deleted key, pipelined
        without a transaction. Raises the first per-command error after the others applied.
        """
        ns, dumps = self.namespace, self._dumps
        commands: list[Command] = []
        for key, value, remaining in values:
            px = _px(remaining)
            if px is None:
                commands.append(("SET", ns + key, dumps(value)))
            else:
                commands.append(("SET", ns + key, dumps(value), "PX", px))
        # One UNLINK per key: keys of a batch may live in different Cluster slots.
        commands.extend(("UNLINK", ns + key) for key in deleted)
        if not commands:
            return
        replies = await self._run(self.client.pipeline(commands))
        for reply in replies:
            if isinstance(reply, Exception):
                self._stats.errors += 1
                raise reply
        self._stats.sets += len(values)
        self._stats.deletes += sum(int(r) for r in replies[len(values) :])

    async def _fill(self, key: str, factory: Factory, ttl: float | None) -> Any:
        if self.lock_timeout is None:
            return await super()._fill(key, factory, ttl)
        return await self.fill_locked(self, key, factory, ttl)

    async def fill_locked(
        self, store: CacheService, key: str, factory: Factory, ttl: float | None
    ) -> Any:
        """Compute ``key`` under the cross-process lock, reading/writing through ``store``."""
        return await fill_with_lock(
            self.client,
            self.lock_namespace + key,
            self.lock_timeout or 10.0,
            store,
            key,
            factory,
            ttl,
        )


async def list_cache_names(client: RedisClient, key_prefix: str) -> list[str]:
    """Names of the caches that have entries in Redis under ``key_prefix`` (sorted)."""
    head = f"{key_prefix}:cache:"
    names: set[str] = set()
    async for full in client.scan_iter(_glob_escape(head) + "*", _BATCH):
        rest = full[len(head) :]
        name, sep, _ = rest.partition(":")
        if sep and name:
            names.add(name)
    return sorted(names)
