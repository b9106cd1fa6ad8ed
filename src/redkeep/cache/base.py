"""The cache API shared by every backend: :class:`CacheService` and :class:`CacheStats`.

A backend implements the abstract primitives; :class:`CacheService` adds argument checking
helpers and the single-flight :meth:`CacheService.get_or_set`.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any, Final, TypeAlias

from redkeep import names
from redkeep.errors import InvalidKey
from redkeep.serialization import JsonSerializer, Serializer

__all__ = [
    "MISSING",
    "TTL",
    "CacheService",
    "CacheStats",
    "Factory",
    "check_name",
    "ttl_seconds",
]

TTL: TypeAlias = float | int | timedelta | None
"""A time to live: seconds (int/float) or a :class:`~datetime.timedelta`; None = default."""

Factory: TypeAlias = Callable[[], Awaitable[Any] | Any]
"""A zero-argument callable returning the value (or an awaitable of it) for get_or_set."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()
"""Sentinel default: ``await cache.get(key, MISSING) is MISSING`` tells a miss from stored None."""


def check_name(name: str) -> str:
    """Validate a cache name by the one rule of :mod:`redkeep.names` (raises
    :class:`~redkeep.errors.InvalidName`, a ``ValueError``)."""
    return names.check_name(name, "cache name")


def ttl_seconds(ttl: TTL, default: float | None) -> float | None:
    """Resolve ``ttl`` to seconds (None = no expiry); zero or negative raises ValueError."""
    if ttl is None:
        return default
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, int | float) and not isinstance(ttl, bool):
        seconds = float(ttl)
    else:
        raise TypeError(f"ttl must be seconds (int/float) or a timedelta, got {type(ttl).__name__}")
    if not seconds > 0:  # also rejects NaN
        raise ValueError(f"ttl must be positive, got {ttl!r}")
    return seconds


@dataclass(slots=True)
class CacheStats:
    """Counters of one cache (monotonic since creation). ``stats()`` returns a snapshot copy."""

    hits: int = 0
    misses: int = 0
    sets: int = 0
    deletes: int = 0
    errors: int = 0
    """Backend errors raised by (or, under a fallback, absorbed from) the backend."""
    fallback_reads: int = 0
    """Reads answered from the memory fallback while Redis was unavailable."""
    fallback_writes: int = 0
    """Writes and deletes applied to the memory fallback while Redis was unavailable."""
    evictions: int = 0
    """Entries dropped by LRU eviction (memory backend)."""
    l1_hits: int = 0
    """Reads answered by a tiered cache's in-process L1 (also counted in ``hits``)."""
    l1_misses: int = 0
    """Reads a tiered cache's L1 did not hold (answered by Redis)."""
    l1_bypassed_reads: int = 0
    """Reads that skipped the L1 while it was bypassed (channel lost or lagging, fallback)."""
    l1_invalidations: int = 0
    """L1 entries dropped because Redis reported their key changed (or the channel was lost)."""
    operations: int = 0
    """Timed operations (each public call counts once)."""
    op_seconds: float = 0.0
    """Total seconds spent in timed operations; ``op_seconds / operations`` is the mean latency."""

    @property
    def hit_ratio(self) -> float:
        """hits / (hits + misses), 0.0 before any read."""
        reads = self.hits + self.misses
        return self.hits / reads if reads else 0.0

    def copy(self) -> CacheStats:
        """A snapshot of these counters."""
        return CacheStats(*(getattr(self, f.name) for f in fields(self)))

    def __add__(self, other: CacheStats) -> CacheStats:
        return CacheStats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def as_dict(self) -> dict[str, float]:
        """The counters as a plain dict (for health output and metrics)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class CacheService(abc.ABC):
    """One async cache API over memory, Redis and fallback backends.

    Keys are any non-empty ``str`` up to ``max_key_length`` characters (else
    :class:`~redkeep.errors.InvalidKey`). Values are anything the serializer round-trips (else
    :class:`~redkeep.errors.SerializationError`, and nothing is written). ``ttl`` arguments take
    seconds or a ``timedelta``; None means the cache's ``default_ttl``; zero or negative raises
    ``ValueError``.
    """

    name: str
    default_ttl: float | None
    max_key_length: int
    serializer: Serializer

    def __init__(
        self,
        name: str = "default",
        *,
        default_ttl: TTL = None,
        max_key_length: int = 1024,
        serializer: Serializer | None = None,
    ) -> None:
        self.name = check_name(name)
        self.default_ttl = ttl_seconds(default_ttl, None)
        if max_key_length < 1:
            raise ValueError(f"max_key_length must be >= 1, got {max_key_length}")
        self.max_key_length = max_key_length
        self.serializer = serializer if serializer is not None else JsonSerializer()
        self._stats = CacheStats()
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    # -- checks --------------------------------------------------------------------------------
    def _bad_key(self, key: object) -> InvalidKey:
        if not isinstance(key, str):
            return InvalidKey(f"cache key must be a str, got {type(key).__name__}")
        if not key:
            return InvalidKey("cache key must not be empty")
        return InvalidKey(
            f"cache key is {len(key)} characters long, over the maximum of {self.max_key_length}"
            f" (key starts {key[:40]!r})"
        )

    def _check_key(self, key: object) -> str:
        if type(key) is not str or not 0 < len(key) <= self.max_key_length:
            raise self._bad_key(key)
        return key

    def _check_keys(self, keys: Iterable[str]) -> list[str]:
        if isinstance(keys, str):
            raise InvalidKey("expected an iterable of keys, got a single str")
        return [self._check_key(k) for k in keys]

    def _ttl(self, ttl: TTL) -> float | None:
        return self.default_ttl if ttl is None else ttl_seconds(ttl, self.default_ttl)

    # -- abstract API --------------------------------------------------------------------------
    @abc.abstractmethod
    async def get(self, key: str, default: Any = None) -> Any:
        """The value stored at ``key``, or ``default`` when absent or expired."""

    @abc.abstractmethod
    async def set(self, key: str, value: Any, ttl: TTL = None) -> None:
        """Store ``value`` at ``key`` (overwriting), expiring after ``ttl``."""

    @abc.abstractmethod
    async def add(self, key: str, value: Any, ttl: TTL = None) -> bool:
        """Store ``value`` only when ``key`` is absent; True when it was stored."""

    @abc.abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""

    @abc.abstractmethod
    async def has(self, key: str) -> bool:
        """True when ``key`` is present and not expired."""

    @abc.abstractmethod
    async def clear(self) -> int:
        """Remove every key of this cache's namespace; returns how many were removed."""

    @abc.abstractmethod
    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The present keys among ``keys`` with their values (absent keys are left out)."""

    @abc.abstractmethod
    async def set_many(self, mapping: Mapping[str, Any], ttl: TTL = None) -> None:
        """Store every pair (one round trip on Redis); nothing is written if one fails to encode."""

    @abc.abstractmethod
    async def delete_many(self, keys: Iterable[str]) -> int:
        """Remove ``keys``; returns how many existed."""

    @abc.abstractmethod
    async def incr(self, key: str, delta: int = 1) -> int:
        """Add ``delta`` to the integer at ``key`` (absent = 0) and return the new value.

        A new key gets the default TTL; an existing key keeps its TTL. A stored value that is
        not an integer raises :class:`~redkeep.errors.SerializationError`.
        """

    @abc.abstractmethod
    async def ttl(self, key: str) -> float | None:
        """Remaining seconds to live; None when ``key`` has no expiry or does not exist."""

    @abc.abstractmethod
    async def touch(self, key: str, ttl: TTL) -> bool:
        """Give ``key`` a new TTL (None = the default TTL, or no expiry without one).

        Returns False when the key does not exist."""

    @abc.abstractmethod
    def items(self) -> AsyncIterator[tuple[str, Any, float | None]]:
        """Iterate ``(key, value, remaining_ttl_seconds | None)`` over this cache's namespace."""

    async def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release resources held by this cache (the shared Redis client is not closed)."""

    def stats(self) -> CacheStats:
        """A snapshot of this cache's counters."""
        return self._stats.copy()

    # -- single flight -------------------------------------------------------------------------
    async def get_or_set(self, key: str, factory: Factory, ttl: TTL = None) -> Any:
        """The cached value at ``key``, or ``factory()``'s result, stored with ``ttl``.

        Single-flight: concurrent callers in this process for one missing key share a single
        factory call. A factory error reaches every waiter and nothing is cached.
        """
        self._check_key(key)
        ttl = self._ttl(ttl)  # validate before anything runs
        if key in self._inflight:
            self._stats.misses += 1  # joining a fill in progress: the value is not there yet
        else:
            value = await self.get(key, MISSING)
            if value is not MISSING:
                return value
        while True:
            fut = self._inflight.get(key)
            if fut is None:
                return await self._lead(key, factory, ttl)
            try:
                return await asyncio.shield(fut)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if fut.cancelled() and not (task is not None and task.cancelling()):
                    continue  # the leader was cancelled, not us: try again
                raise

    async def _lead(self, key: str, factory: Factory, ttl: float | None) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            value = await self._fill(key, factory, ttl)
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: there may be no waiter
            raise
        else:
            fut.set_result(value)
            return value
        finally:
            if self._inflight.get(key) is fut:
                del self._inflight[key]

    async def _fill(self, key: str, factory: Factory, ttl: float | None) -> Any:
        """Compute and store the value of a missing key (the Redis backend adds a lock)."""
        value = await call_factory(factory)
        await self.set(key, value, ttl)
        return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


async def call_factory(factory: Factory) -> Any:
    """Call ``factory()`` and await its result when it is awaitable."""
    result = factory()
    if inspect.isawaitable(result):
        result = await result
    return result
