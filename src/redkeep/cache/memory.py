"""In-process cache: bounded LRU with per-entry TTL on the monotonic clock.

Values are stored serialized, so a cached value is isolated from later mutation by the caller
and behaves exactly as it would through Redis (same accepted types, same round trip). Two
bounds evict the least recently used entries: ``max_entries``, and ``max_bytes`` over the
length of each key and encoded value plus :data:`ENTRY_OVERHEAD` (what an entry costs Python
beyond its text, measured); one entry larger than ``max_bytes`` is refused with
:class:`~redkeep.errors.PayloadTooLarge`.
Every operation is O(1) (``clear``/``items`` are O(n)); a ``threading.Lock`` makes it safe from
many tasks and threads (no await happens while it is held).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from redkeep.cache.base import TTL, CacheService
from redkeep.errors import PayloadTooLarge, SerializationError
from redkeep.serialization import Serializer

__all__ = ["DEFAULT_MAX_BYTES", "ENTRY_OVERHEAD", "MemoryCache"]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
ENTRY_OVERHEAD = 200
"""Bytes one entry costs beyond its key and encoded value (dict slot, tuple, str headers)."""

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# An entry is (encoded value, absolute expiry on the monotonic clock or None).
_Entry = tuple[str, float | None]


class MemoryCache(CacheService):
    """LRU cache of at most ``max_entries`` entries and about ``max_bytes`` bytes; expired
    entries are never returned."""

    def __init__(
        self,
        name: str = "default",
        *,
        max_entries: int = 10_000,
        max_bytes: int = DEFAULT_MAX_BYTES,
        default_ttl: TTL = None,
        max_key_length: int = 1024,
        serializer: Serializer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            name, default_ttl=default_ttl, max_key_length=max_key_length, serializer=serializer
        )
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._bytes = 0
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._clock = clock

    def __len__(self) -> int:
        """Entries held, including expired ones not yet dropped."""
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        """Estimated bytes held (keys, encoded values and per-entry overhead)."""
        return self._bytes

    def _fits(self, key: str, text: str) -> None:
        size = len(key) + len(text) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            raise PayloadTooLarge(size, self.max_bytes)

    # -- internals (call with the lock held) ---------------------------------------------------
    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        expires = entry[1]
        if expires is not None and expires <= now:
            self._remove(key)
            return None
        return entry

    def _remove(self, key: str) -> None:
        text, _ = self._data.pop(key)
        self._bytes -= len(key) + len(text) + ENTRY_OVERHEAD

    def _store(self, key: str, text: str, ttl: float | None, now: float) -> None:
        self._put(key, text, None if ttl is None else now + ttl)

    def _put(self, key: str, text: str, expires: float | None) -> None:
        data = self._data
        if key in data:
            self._remove(key)
        data[key] = (text, expires)
        self._bytes += len(key) + len(text) + ENTRY_OVERHEAD
        while len(data) > self.max_entries or self._bytes > self.max_bytes:
            old, (old_text, _) = data.popitem(last=False)
            self._bytes -= len(old) + len(old_text) + ENTRY_OVERHEAD
            self._stats.evictions += 1

    # -- API -----------------------------------------------------------------------------------
    async def get(self, key: str, default: Any = None) -> Any:
        """The value stored at ``key``, or ``default`` when absent or expired."""
        self._check_key(key)
        stats = self._stats
        with self._lock:
            entry = self._live(key, self._clock())
            if entry is not None:
                self._data.move_to_end(key)
        stats.operations += 1
        if entry is None:
            stats.misses += 1
            return default
        stats.hits += 1
        return self.serializer.loads(entry[0])

    async def set(self, key: str, value: Any, ttl: TTL = None) -> None:
        """Store ``value`` at ``key``, expiring after ``ttl``."""
        self._check_key(key)
        seconds = self._ttl(ttl)
        text = self.serializer.dumps(value)
        self._fits(key, text)
        with self._lock:
            self._store(key, text, seconds, self._clock())
        self._stats.sets += 1
        self._stats.operations += 1

    async def add(self, key: str, value: Any, ttl: TTL = None) -> bool:
        """Store ``value`` only when ``key`` is absent; True when stored."""
        self._check_key(key)
        seconds = self._ttl(ttl)
        text = self.serializer.dumps(value)
        self._fits(key, text)
        self._stats.operations += 1
        with self._lock:
            now = self._clock()
            if self._live(key, now) is not None:
                return False
            self._store(key, text, seconds, now)
        self._stats.sets += 1
        return True

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed (and had not expired)."""
        self._check_key(key)
        self._stats.operations += 1
        with self._lock:
            existed = self._live(key, self._clock()) is not None
            if existed:
                self._remove(key)
        if existed:
            self._stats.deletes += 1
        return existed

    async def has(self, key: str) -> bool:
        """True when ``key`` is present and not expired."""
        self._check_key(key)
        self._stats.operations += 1
        with self._lock:
            return self._live(key, self._clock()) is not None

    async def clear(self) -> int:
        """Drop every entry; returns how many live entries there were."""
        with self._lock:
            now = self._clock()
            count = sum(1 for _, exp in self._data.values() if exp is None or exp > now)
            self._data.clear()
            self._bytes = 0
        self._stats.operations += 1
        self._stats.deletes += count
        return count

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The present keys among ``keys`` with their values."""
        checked = self._check_keys(keys)
        found: dict[str, str] = {}
        with self._lock:
            now = self._clock()
            for key in checked:
                entry = self._live(key, now)
                if entry is not None:
                    self._data.move_to_end(key)
                    found[key] = entry[0]
        stats = self._stats
        stats.operations += 1
        stats.hits += len(found)
        stats.misses += len(set(checked)) - len(found)
        loads = self.serializer.loads
        return {k: loads(v) for k, v in found.items()}

    async def set_many(self, mapping: Mapping[str, Any], ttl: TTL = None) -> None:
        """Store every pair; nothing is written if one key or value is rejected."""
        seconds = self._ttl(ttl)
        dumps = self.serializer.dumps
        encoded = [(self._check_key(k), dumps(v)) for k, v in mapping.items()]
        for key, text in encoded:
            self._fits(key, text)
        with self._lock:
            now = self._clock()
            for key, text in encoded:
                self._store(key, text, seconds, now)
        self._stats.operations += 1
        self._stats.sets += len(encoded)

    async def delete_many(self, keys: Iterable[str]) -> int:
        """Remove ``keys``; returns how many existed."""
        checked = self._check_keys(keys)
        count = 0
        with self._lock:
            now = self._clock()
            for key in checked:
                if self._live(key, now) is not None:
                    self._remove(key)
                    count += 1
        self._stats.operations += 1
        self._stats.deletes += count
        return count

    async def incr(self, key: str, delta: int = 1) -> int:
        """Add ``delta`` to the integer at ``key`` (absent = 0); returns the new value."""
        self._check_key(key)
        if type(delta) is not int:
            raise TypeError(f"delta must be an int, got {type(delta).__name__}")
        self._stats.operations += 1
        with self._lock:
            now = self._clock()
            entry = self._live(key, now)
            if entry is None:
                current, expires = 0, (None if self.default_ttl is None else now + self.default_ttl)
            else:
                current = _as_int(key, self.serializer.loads(entry[0]))
                expires = entry[1]
            value = current + delta
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise SerializationError(f"incr of key {key[:40]!r} overflows a 64-bit integer")
            self._put(key, self.serializer.dumps(value), expires)
        self._stats.sets += 1
        return value

    async def ttl(self, key: str) -> float | None:
        """Remaining seconds; None when ``key`` has no expiry or does not exist."""
        self._check_key(key)
        self._stats.operations += 1
        with self._lock:
            now = self._clock()
            entry = self._live(key, now)
        if entry is None or entry[1] is None:
            return None
        return max(0.0, entry[1] - now)

    async def touch(self, key: str, ttl: TTL) -> bool:
        """Give ``key`` a new TTL; False when it does not exist."""
        self._check_key(key)
        seconds = self._ttl(ttl)
        self._stats.operations += 1
        with self._lock:
            now = self._clock()
            entry = self._live(key, now)
            if entry is None:
                return False
            self._put(key, entry[0], None if seconds is None else now + seconds)
        return True

    async def items(self) -> AsyncIterator[tuple[str, Any, float | None]]:
        """Iterate ``(key, value, remaining_ttl | None)`` over a snapshot of live entries."""
        with self._lock:
            now = self._clock()
            snapshot = [
                (k, text, exp) for k, (text, exp) in self._data.items() if exp is None or exp > now
            ]
        loads = self.serializer.loads
        for key, text, exp in snapshot:
            yield key, loads(text), (None if exp is None else max(0.001, exp - now))

    def discard_all(self) -> None:
        """Drop all entries at once, synchronously and without counting them as deletes."""
        with self._lock:
            self._data.clear()
            self._bytes = 0

    async def close(self) -> None:
        """Drop all entries."""
        self.discard_all()


def _as_int(key: str, value: Any) -> int:
    if type(value) is not int:
        raise SerializationError(
            f"cannot incr key {key[:40]!r}: the stored value is a {type(value).__name__}, "
            "not an integer"
        )
    return value
