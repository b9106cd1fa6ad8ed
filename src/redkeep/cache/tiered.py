"""An in-process L1 in front of a Redis L2: :class:`TieredCache`.

Reads look in a small in-process LRU (:class:`~redkeep.cache._l1.L1Store`) first; a miss reads
Redis (GET + PTTL in one round trip) and keeps the encoded value for at most ``l1_ttl`` seconds,
never past its Redis expiry. Every write goes to the L2 and drops the key from this process's
L1; other processes drop it when Redis tells them
(:class:`~redkeep.cache.invalidation.InvalidationListener`).

L1 is used only while it can be trusted, checked on every read:

- the invalidation channel is *fresh* (established, and its newest acknowledged heartbeat is at
  most ``max_lag`` seconds old); when the channel is lost every L1 is emptied, and reads go to
  the L2 until it is back;
- the L2 is on Redis: a :class:`~redkeep.cache.fallback.FallbackCache` in fallback mode (or
  with its breaker not closed) empties the L1 and every call goes through it, so the
  fallback's no-stale-resurrection rule is kept as it is.

A fill whose key is invalidated (or written here) while its reply is in flight is not kept. So
a value answered from L1 was the value in Redis at some instant at most ``max_lag`` seconds
before the read (``l1_ttl`` without an invalidation channel). See docs/cache.md.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from redkeep.cache._l1 import L1Store
from redkeep.cache.base import TTL, CacheService, CacheStats, Factory
from redkeep.cache.fallback import FallbackCache
from redkeep.cache.invalidation import InvalidationListener
from redkeep.cache.redis import RedisCache
from redkeep.errors import BackendError

__all__ = ["L1State", "TieredCache"]

L1State = Literal["on", "bypassed"]

_MiB = 1024 * 1024
_monotonic = time.monotonic


class TieredCache(CacheService):
    """A memory L1 (LRU, bounded in entries and bytes, short TTL) over a Redis L2.

    ``l2`` is a :class:`RedisCache` or a :class:`FallbackCache`. ``invalidation`` is the
    listener shared by the caches of one Redis (it is not closed by :meth:`close`); None means
    no invalidation channel (e.g. Upstash REST): L1 entries then live ``l1_ttl`` seconds
    whatever other processes write, which is the staleness bound.
    """

    def __init__(
        self,
        l2: RedisCache | FallbackCache,
        invalidation: InvalidationListener | None,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * _MiB,
        l1_ttl: float = 5.0,
    ) -> None:
        super().__init__(
            l2.name,
            default_ttl=l2.default_ttl,
            max_key_length=l2.max_key_length,
            serializer=l2.serializer,
        )
        if not l1_ttl > 0:
            raise ValueError(f"l1_ttl must be positive, got {l1_ttl!r}")
        self.l2 = l2
        self.primary = l2.primary if isinstance(l2, FallbackCache) else l2
        """The :class:`RedisCache` that L1 fills read from."""
        self.invalidation = invalidation
        self.l1 = L1Store(max_entries, max_bytes)
        self.l1_ttl = l1_ttl
        self._l2_ok: Callable[[], bool] = (
            (lambda: l2.mode == "redis" and l2.breaker.state == "closed")
            if isinstance(l2, FallbackCache)
            else (lambda: True)
        )
        self._loads = self.serializer.loads
        if invalidation is not None:
            invalidation.subscribe(self.name, self._invalidated)

    # -- L1 state ------------------------------------------------------------------------------
    def _invalidated(self, key: str | None) -> None:
        if key is None:
            self._stats.l1_invalidations += len(self.l1)
            self.l1.clear()
        elif self.l1.invalidate(key):
            self._stats.l1_invalidations += 1

    def _l1_on(self) -> bool:
        """True when L1 may answer (and be filled) now."""
        if not self._l2_ok():
            if len(self.l1):
                self.l1.clear()  # the fallback answers until it has replayed into Redis
            return False
        inv = self.invalidation
        if inv is not None and not inv.fresh():
            inv.ensure_started()
            return False
        return True

    @property
    def l1_state(self) -> L1State:
        """``on`` while reads may be answered from L1, ``bypassed`` while they go to the L2."""
        return "on" if self._l1_on() else "bypassed"

    @property
    def mode(self) -> Literal["redis", "fallback"]:
        """The L2's mode (``redis`` for a plain :class:`RedisCache`)."""
        return self.l2.mode if isinstance(self.l2, FallbackCache) else "redis"

    def l1_status(self) -> dict[str, Any]:
        """The L1 state for health output (no keys, no secrets)."""
        status: dict[str, Any] = {
            "state": self.l1_state,
            "entries": len(self.l1),
            "bytes": self.l1.bytes,
            "ttl": self.l1_ttl,
        }
        inv = self.invalidation
        if inv is None:
            status["invalidation"] = "none"
            status["staleness_bound"] = self.l1_ttl
            return status
        status["invalidation"] = inv.state
        status["tracked_primaries"] = len(inv.nodes)
        status["staleness_bound"] = inv.max_lag
        lag = inv.lag()
        if lag is not None:
            status["lag_ms"] = round(lag * 1000, 1)
        if status["state"] == "bypassed":
            if not self._l2_ok():
                status["reason"] = "the L2 serves from its memory fallback"
            elif inv.state != "up":
                why = f": {inv.last_error}" if inv.last_error else ""
                status["reason"] = f"invalidation channel {inv.state}{why}"
            else:
                status["reason"] = f"invalidation channel lags over {inv.max_lag}s"
        return status

    # -- fills ---------------------------------------------------------------------------------
    async def _fetch(self, keys: Sequence[str]) -> list[tuple[str | None, float | None]] | None:
        """Fill L1 for ``keys`` from Redis; None when Redis failed under a FallbackCache (the
        fallback then knows, and the caller asks it)."""
        l1 = self.l1
        tokens = [l1.begin_fill(k) for k in keys]
        try:
            entries = await self.primary.get_entries(keys)
        except BaseException as exc:
            for key, token in zip(keys, tokens, strict=True):
                l1.cancel_fill(key, token)
            if isinstance(exc, BackendError) and isinstance(self.l2, FallbackCache):
                self.l2.report_failure(exc)
                return None
            raise
        l1_ttl = self.l1_ttl
        for key, token, (text, remaining) in zip(keys, tokens, entries, strict=True):
            ttl = l1_ttl if remaining is None or remaining > l1_ttl else remaining
            l1.finish_fill(key, token, text, ttl)
        return entries

    # -- reads ---------------------------------------------------------------------------------
    async def get(self, key: str, default: Any = None) -> Any:
        """From L1 when it holds ``key``, else from the L2 (kept in L1)."""
        if type(key) is not str or not 0 < len(key) <= self.max_key_length:
            raise self._bad_key(key)
        stats = self._stats
        # the hot path: one clock read serves the freshness check and the entry's expiry
        now = _monotonic()
        inv = self.invalidation
        if (inv is not None and now >= inv.fresh_until) or not self._l2_ok():
            self._l1_on()  # starts the listener, or drops L1 while the L2 is on its fallback
            stats.l1_bypassed_reads += 1
            return await self.l2.get(key, default)
        text = self.l1.get(key, now)
        if text is not None:
            stats.l1_hits += 1
            stats.hits += 1
            stats.operations += 1
            return self._loads(text)
        stats.l1_misses += 1
        entries = await self._fetch((key,))
        if entries is None:
            return await self.l2.get(key, default)
        text = entries[0][0]
        return default if text is None else self._loads(text)

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """L1 hits plus one Redis round trip for the rest."""
        checked = self._check_keys(keys)
        stats = self._stats
        if not self._l1_on():
            stats.l1_bypassed_reads += len(checked)
            return await self.l2.get_many(checked)
        found: dict[str, str] = {}
        missing: list[str] = []
        l1 = self.l1
        for key in dict.fromkeys(checked):
            text = l1.get(key)
            if text is None:
                missing.append(key)
            else:
                found[key] = text
        stats.operations += 1
        stats.hits += len(found)
        stats.l1_hits += len(found)
        stats.l1_misses += len(missing)
        if missing:
            entries = await self._fetch(missing)
            if entries is None:
                return await self.l2.get_many(checked)
            for key, (text, _) in zip(missing, entries, strict=True):
                if text is not None:
                    found[key] = text
        loads = self._loads
        return {k: loads(v) for k, v in found.items()}

    async def has(self, key: str) -> bool:
        """True from L1 when it holds ``key``, else the L2's EXISTS."""
        self._check_key(key)
        if self._l1_on() and self.l1.get(key) is not None:
            self._stats.operations += 1
            return True
        return await self.l2.has(key)

    async def ttl(self, key: str) -> float | None:
        """The L2's remaining TTL."""
        return await self.l2.ttl(key)

    async def items(self) -> AsyncIterator[tuple[str, Any, float | None]]:
        """The L2's entries."""
        async for item in self.l2.items():
            yield item

    # -- writes: to the L2, then the key leaves this process's L1 --------------------------------
    async def set(self, key: str, value: Any, ttl: TTL = None) -> None:
        """Store in the L2; drops ``key`` from L1."""
        self._check_key(key)
        try:
            await self.l2.set(key, value, ttl)
        finally:
            self.l1.invalidate(key)

    async def add(self, key: str, value: Any, ttl: TTL = None) -> bool:
        """SET NX in the L2; drops ``key`` from L1."""
        self._check_key(key)
        try:
            return await self.l2.add(key, value, ttl)
        finally:
            self.l1.invalidate(key)

    async def delete(self, key: str) -> bool:
        """Delete from the L2 and L1."""
        self._check_key(key)
        try:
            return await self.l2.delete(key)
        finally:
            self.l1.invalidate(key)

    async def incr(self, key: str, delta: int = 1) -> int:
        """Increment in the L2; drops ``key`` from L1."""
        self._check_key(key)
        try:
            return await self.l2.incr(key, delta)
        finally:
            self.l1.invalidate(key)

    async def touch(self, key: str, ttl: TTL) -> bool:
        """New TTL in the L2; drops ``key`` from L1 (its L1 expiry may now be too late)."""
        self._check_key(key)
        try:
            return await self.l2.touch(key, ttl)
        finally:
            self.l1.invalidate(key)

    async def set_many(self, mapping: Mapping[str, Any], ttl: TTL = None) -> None:
        """Store every pair in the L2; drops the keys from L1."""
        keys = self._check_keys(list(mapping))
        try:
            await self.l2.set_many(mapping, ttl)
        finally:
            self.l1.invalidate_many(keys)

    async def delete_many(self, keys: Iterable[str]) -> int:
        """Delete from the L2 and L1."""
        checked = self._check_keys(keys)
        try:
            return await self.l2.delete_many(checked)
        finally:
            self.l1.invalidate_many(checked)

    async def clear(self) -> int:
        """Clear the L2 namespace and the whole L1."""
        try:
            return await self.l2.clear()
        finally:
            self.l1.clear()

    # -- misc ----------------------------------------------------------------------------------
    async def _fill(self, key: str, factory: Factory, ttl: float | None) -> Any:
        if self.primary.lock_timeout is not None and self._l2_ok():
            return await self.primary.fill_locked(self, key, factory, ttl)
        return await super()._fill(key, factory, ttl)

    def stats(self) -> CacheStats:
        """L1 counters (an L1 hit counts as a hit) plus the L2's counters."""
        own = self._stats.copy()
        own.evictions += self.l1.evictions
        return own + self.l2.stats()

    async def close(self) -> None:
        """Unsubscribe, drop L1 and close the L2 (the listener and client are shared)."""
        if self.invalidation is not None:
            self.invalidation.unsubscribe(self.name, self._invalidated)
        self.l1.clear()
        await self.l2.close()
