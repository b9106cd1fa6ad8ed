"""Redis first, memory while Redis is unavailable: :class:`FallbackCache`.

Modes: ``"redis"`` (every call goes to the primary :class:`~redkeep.cache.redis.RedisCache`) and
``"fallback"`` (every call goes to a cold :class:`~redkeep.cache.memory.MemoryCache`). The first
backend error of any call, or a circuit breaker that is not closed, switches to fallback; that
call is answered from memory, so no Redis error reaches the caller. While in fallback, each call
may start one background recovery attempt (gated by the breaker: after ``reset_timeout`` a
single half-open probe): PING, then *replay*, then switch back to Redis.

No stale resurrection. During the outage every key written, incremented, touched, added or
deleted is recorded (up to ``max_dirty_keys``; beyond that, or after ``clear()``, the whole
namespace is marked for invalidation). Replay makes Redis agree with memory for those keys
before any call is served from Redis again: a key that memory holds is written to Redis with
its value and remaining TTL; a key memory does not hold (deleted, expired or evicted) is deleted
from Redis; for a whole-namespace invalidation the namespace is cleared in Redis first and all
live memory entries are written. Replay is pipelined: up to ``replay_batch`` keys per round
trip, each key's state read from memory right before its batch is sent. Writes made while
replay runs are recorded too and replayed in the next round; after ``replay_rounds`` rounds that
still left keys behind, writes wait for one final round (reads are still answered from memory),
so recovery takes a bounded number of round trips however busy the writers are. The switch back
happens with no await after the last round. Then memory is emptied, so a later outage starts
cold again. See docs/cache.md for the exact guarantee.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar

from redkeep.cache.base import MISSING, TTL, CacheService, CacheStats, Factory
from redkeep.cache.memory import MemoryCache
from redkeep.cache.redis import RedisCache
from redkeep.errors import BackendError, is_transient, scrub
from redkeep.resilience import CircuitBreaker

__all__ = ["FallbackCache"]

log = logging.getLogger("redkeep.cache")

T = TypeVar("T")


class FallbackCache(CacheService):
    """A :class:`RedisCache` with a memory fallback and stale-resurrection-safe recovery."""

    def __init__(
        self,
        primary: RedisCache,
        fallback: MemoryCache | None = None,
        *,
        breaker: CircuitBreaker | None = None,
        max_dirty_keys: int = 100_000,
        replay_batch: int = 500,
        replay_rounds: int = 3,
    ) -> None:
        super().__init__(
            primary.name,
            default_ttl=primary.default_ttl,
            max_key_length=primary.max_key_length,
            serializer=primary.serializer,
        )
        self.primary = primary
        if fallback is None:
            fallback = MemoryCache(
                primary.name,
                default_ttl=primary.default_ttl,
                max_key_length=primary.max_key_length,
                serializer=primary.serializer,
            )
        self.fallback = fallback
        self.breaker = breaker if breaker is not None else CircuitBreaker(f"cache:{primary.name}")
        if max_dirty_keys < 0:
            raise ValueError(f"max_dirty_keys must be >= 0, got {max_dirty_keys}")
        self.max_dirty_keys = max_dirty_keys
        if replay_batch < 1:
            raise ValueError(f"replay_batch must be >= 1, got {replay_batch}")
        if replay_rounds < 0:
            raise ValueError(f"replay_rounds must be >= 0, got {replay_rounds}")
        self.replay_batch = replay_batch
        """Keys replayed per pipelined round trip."""
        self.replay_rounds = replay_rounds
        """Replay rounds that run alongside writers before writes wait for the final round."""
        self._healthy = True
        self._dirty: set[str] = set()
        self._invalidate_all = False
        self._recovery: asyncio.Task[None] | None = None
        self._retry_at = 0.0
        # Set while the final replay round runs: writes wait for it (see _wait_for_replay).
        self._gate: asyncio.Event | None = None

    @property
    def mode(self) -> Literal["redis", "fallback"]:
        """``"redis"`` while calls go to Redis, ``"fallback"`` while memory answers."""
        return "redis" if self._healthy else "fallback"

    @property
    def pending_keys(self) -> int:
        """Keys recorded during the outage that replay will write or delete in Redis."""
        return len(self._dirty)

    # -- mode switching ------------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        self.breaker.record_failure(exc)
        self._enter_fallback(f"{type(exc).__name__}: {scrub(str(exc))}")

    def report_failure(self, exc: BaseException) -> None:
        """Switch to fallback after ``exc``, a Redis error met by a caller using ``primary``
        directly (the tiered cache's L1 fills), exactly as if one of this cache's calls met it."""
        self._fail(exc)

    def _enter_fallback(self, reason: str) -> None:
        if self._healthy:
            self._healthy = False
            self._retry_at = 0.0
            log.warning(
                "cache %r: Redis unavailable (%s); serving from memory until it recovers",
                self.name,
                reason,
            )

    def _mark(self, key: str) -> None:
        if self._invalidate_all:
            return
        self._dirty.add(key)
        if len(self._dirty) > self.max_dirty_keys:
            self._dirty.clear()
            self._invalidate_all = True

    def _maybe_recover(self) -> None:
        if self._recovery is not None or time.monotonic() < self._retry_at:
            return
        if self.breaker.allow():
            self._recovery = asyncio.get_running_loop().create_task(
                self._recover(), name=f"redkeep-cache-recover-{self.name}"
            )

    async def _recover(self) -> None:
        try:
            await self.primary.client.ping()
            await self._replay()
        except asyncio.CancelledError:
            self.breaker.release()
            raise
        except Exception as exc:
            self.breaker.record_failure(exc)
            wait = 0.05 if is_transient(exc) else self.breaker.reset_timeout
            self._retry_at = time.monotonic() + wait
            log.debug("cache %r: recovery attempt failed: %s", self.name, type(exc).__name__)
        else:
            self.breaker.record_success()
        finally:
            self._recovery = None

    async def _replay(self) -> None:
        replayed = rounds = 0
        try:
            while self._invalidate_all or self._dirty:
                if rounds >= self.replay_rounds and self._gate is None:
                    # Writers keep dirtying keys: hold writes for one last round so it ends.
                    self._gate = asyncio.Event()
                replayed += await self._replay_round()
                rounds += 1
            # Nothing left to replay and no await since the check: switch back atomically.
            self._healthy = True
            self.fallback.discard_all()
        finally:
            gate, self._gate = self._gate, None
            if gate is not None:
                gate.set()
        log.warning(
            "cache %r: back on Redis (%d key(s) replayed in %d round(s))",
            self.name,
            replayed,
            rounds,
        )

    async def _replay_round(self) -> int:
        """Replay everything recorded so far; on failure, record it again for the next attempt."""
        if self._invalidate_all:
            self._invalidate_all = False
            self._dirty.clear()
            try:
                await self.primary.clear()
                # Writes made during the clear were recorded; add them to memory's live keys.
                live = {key async for key, _, _ in self.fallback.items()}
                live.update(self._dirty)
                self._dirty.clear()
                await self._replay_keys(list(live))
            except BaseException:
                self._dirty.clear()
                self._invalidate_all = True
                raise
            return len(live)
        keys = list(self._dirty)
        self._dirty.clear()
        await self._replay_keys(keys)
        return len(keys)

    async def _replay_keys(self, keys: list[str]) -> None:
        size = self.replay_batch
        memory = self.fallback
        for first in range(0, len(keys), size):
            batch = keys[first : first + size]
            values: list[tuple[str, Any, float | None]] = []
            deleted: list[str] = []
            try:
                # MemoryCache's coroutines never suspend: this reads the whole batch's state
                # with no other task running. TTL first, so an entry that expires in between
                # is deleted rather than written without expiry.
                for key in batch:
                    remaining = await memory.ttl(key)
                    value = await memory.get(key, MISSING)
                    if value is MISSING:
                        deleted.append(key)
                    else:
                        values.append((key, value, remaining))
                await self.primary.replay(values, deleted)
            except BaseException:
                for key in keys[first:]:
                    self._mark(key)
                raise

    async def _wait_for_replay(self) -> None:
        """Hold a write while the final replay round runs; it then goes to Redis or memory."""
        while (gate := self._gate) is not None:
            await gate.wait()

    # -- reads ---------------------------------------------------------------------------------
    async def get(self, key: str, default: Any = None) -> Any:
        """Redis GET; memory while in fallback."""
        if self._healthy:
            if self.breaker.state == "closed":
                try:
                    return await self.primary.get(key, default)
                except BackendError as exc:
                    self._fail(exc)
            else:
                self._enter_fallback(f"circuit {self.breaker.state}")
        self._maybe_recover()
        self._stats.fallback_reads += 1
        return await self.fallback.get(key, default)

    def _use_primary(self) -> bool:
        if self._healthy:
            if self.breaker.state == "closed":
                return True
            self._enter_fallback(f"circuit {self.breaker.state}")
        self._maybe_recover()
        return False

    async def _read(self, call: Callable[[CacheService], Awaitable[T]]) -> T:
        """``call(primary)`` while on Redis; ``call(memory)`` in fallback or after a backend
        error (which switches to fallback)."""
        if self._use_primary():
            try:
                return await call(self.primary)
            except BackendError as exc:
                self._fail(exc)
        self._stats.fallback_reads += 1
        return await call(self.fallback)

    async def _write(self, call: Callable[[CacheService], Awaitable[T]]) -> tuple[T, bool]:
        """Like :meth:`_read` for a write, once a final replay round is over: the result and
        whether memory took the write (the caller records its keys for replay)."""
        if self._gate is not None:
            await self._wait_for_replay()
        if self._use_primary():
            try:
                return await call(self.primary), False
            except BackendError as exc:
                self._fail(exc)
        result = await call(self.fallback)
        self._stats.fallback_writes += 1
        return result, True

    async def has(self, key: str) -> bool:
        """Redis EXISTS; memory while in fallback."""
        return await self._read(lambda c: c.has(key))

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Redis MGET; memory while in fallback."""
        keys = self._check_keys(keys)
        return await self._read(lambda c: c.get_many(keys))

    async def ttl(self, key: str) -> float | None:
        """Redis PTTL; memory while in fallback."""
        return await self._read(lambda c: c.ttl(key))

    async def items(self) -> AsyncIterator[tuple[str, Any, float | None]]:
        """The primary's entries while on Redis, memory's during an outage."""
        source: CacheService = self.primary if self._healthy else self.fallback
        async for item in source.items():
            yield item

    # -- writes --------------------------------------------------------------------------------
    async def set(self, key: str, value: Any, ttl: TTL = None) -> None:
        """Redis SET; memory (recorded for replay) while in fallback."""
        if self._gate is not None:
            await self._wait_for_replay()
        if self._healthy:
            if self.breaker.state == "closed":
                try:
                    await self.primary.set(key, value, ttl)
                    return
                except BackendError as exc:
                    self._fail(exc)
            else:
                self._enter_fallback(f"circuit {self.breaker.state}")
        self._maybe_recover()
        await self.fallback.set(key, value, ttl)
        self._stats.fallback_writes += 1
        self._mark(key)

    async def add(self, key: str, value: Any, ttl: TTL = None) -> bool:
        """Redis SET NX; memory while in fallback."""
        stored, in_memory = await self._write(lambda c: c.add(key, value, ttl))
        if in_memory and stored:
            self._mark(key)
        return stored

    async def delete(self, key: str) -> bool:
        """Redis UNLINK; in fallback, removed from memory and recorded so Redis drops it too."""
        existed, in_memory = await self._write(lambda c: c.delete(key))
        if in_memory:
            self._mark(key)
        return existed

    async def clear(self) -> int:
        """Clear the namespace; in fallback, memory now and all of Redis's namespace on recovery."""
        count, in_memory = await self._write(lambda c: c.clear())
        if in_memory:
            self._dirty.clear()
            self._invalidate_all = True
        return count

    async def set_many(self, mapping: Mapping[str, Any], ttl: TTL = None) -> None:
        """Pipelined SETs; memory while in fallback."""
        _, in_memory = await self._write(lambda c: c.set_many(mapping, ttl))
        if in_memory:
            for key in mapping:
                self._mark(key)

    async def delete_many(self, keys: Iterable[str]) -> int:
        """UNLINK; in fallback, memory plus replay records."""
        keys = self._check_keys(keys)
        count, in_memory = await self._write(lambda c: c.delete_many(keys))
        if in_memory:
            for key in keys:
                self._mark(key)
        return count

    async def incr(self, key: str, delta: int = 1) -> int:
        """Redis INCRBY; in fallback the counter continues from memory's value (absent = 0)."""
        value, in_memory = await self._write(lambda c: c.incr(key, delta))
        if in_memory:
            self._mark(key)
        return value

    async def touch(self, key: str, ttl: TTL) -> bool:
        """Redis PEXPIRE; memory while in fallback."""
        touched, in_memory = await self._write(lambda c: c.touch(key, ttl))
        if in_memory and touched:
            self._mark(key)
        return touched

    # -- misc ----------------------------------------------------------------------------------
    async def _fill(self, key: str, factory: Factory, ttl: float | None) -> Any:
        if self._healthy and self.primary.lock_timeout is not None:
            return await self.primary.fill_locked(self, key, factory, ttl)
        return await super()._fill(key, factory, ttl)

    def stats(self) -> CacheStats:
        """Own fallback counters plus the primary's and the memory fallback's counters."""
        return self._stats.copy() + self.primary.stats() + self.fallback.stats()

    async def close(self) -> None:
        """Stop a running recovery and drop memory entries (the Redis client is shared)."""
        task, self._recovery = self._recovery, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.debug("recovery task ended with an error on close", exc_info=True)
        await self.fallback.close()
        await self.primary.close()
