"""The in-process L1 store of :class:`~redkeep.cache.tiered.TieredCache`.

An LRU of encoded values bounded in entries and (approximate) bytes, with an absolute expiry per
entry on the monotonic clock, and *fill tokens*: a read that misses registers a token for its
key before it asks Redis, every invalidation of the key drops the token, and the reply is
installed only if its token is still there. So a reply that raced an invalidation (the value
was overwritten after Redis read it) is never installed. No method awaits.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

__all__ = ["ENTRY_OVERHEAD", "L1Store"]

ENTRY_OVERHEAD = 100
"""Bytes counted per entry on top of its key and value text (dict slot, tuple, str headers)."""

# (encoded value, absolute expiry on the monotonic clock, counted size)
_Entry = tuple[str, float, int]


class L1Store:
    """Bounded LRU of ``key -> encoded value`` with expiry and fill tokens."""

    def __init__(
        self, max_entries: int, max_bytes: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"L1 max_entries must be >= 1, got {max_entries}")
        if max_bytes < 1:
            raise ValueError(f"L1 max_bytes must be >= 1, got {max_bytes}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        """Approximate bytes held (key + value text + :data:`ENTRY_OVERHEAD` per entry)."""
        self.evictions = 0
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._tokens: dict[str, object] = {}
        self._clock = clock

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str, now: float | None = None) -> str | None:
        """The live encoded value of ``key`` (refreshing its LRU position), or None.

        ``now`` is the store clock's current time when the caller already read it."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] <= (self._clock() if now is None else now):
            self._drop(key)
            return None
        self._data.move_to_end(key)
        return entry[0]

    def begin_fill(self, key: str) -> object:
        """Register a fill of ``key``; pass the token to :meth:`finish_fill` with the reply."""
        token = object()
        self._tokens[key] = token
        return token

    def finish_fill(self, key: str, token: object, text: str | None, ttl: float | None) -> None:
        """Install ``text`` for ``ttl`` seconds unless ``key`` was invalidated since
        :meth:`begin_fill` (or ``text`` is None: the key is absent)."""
        if self._tokens.get(key) is not token:
            return
        del self._tokens[key]
        if text is None or ttl is None or not ttl > 0:
            return
        size = len(key) + len(text) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        self._drop(key)
        self._data[key] = (text, self._clock() + ttl, size)
        self.bytes += size
        while len(self._data) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, _, dropped) = self._data.popitem(last=False)
            self.bytes -= dropped
            self.evictions += 1

    def cancel_fill(self, key: str, token: object) -> None:
        """Forget a fill that ended without a reply."""
        if self._tokens.get(key) is token:
            del self._tokens[key]

    def invalidate(self, key: str) -> bool:
        """Drop ``key`` and any fill in flight for it; True when an entry was held."""
        self._tokens.pop(key, None)
        return self._drop(key)

    def invalidate_many(self, keys: Iterable[str]) -> None:
        """:meth:`invalidate` each key."""
        for key in keys:
            self.invalidate(key)

    def clear(self) -> None:
        """Drop every entry and every fill in flight."""
        self._data.clear()
        self._tokens.clear()
        self.bytes = 0

    def _drop(self, key: str) -> bool:
        entry = self._data.pop(key, None)
        if entry is None:
            return False
        self.bytes -= entry[2]
        return True
