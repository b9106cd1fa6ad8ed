"""The blocking cache API: :class:`SyncCache`, one :class:`~redkeep.cache.base.CacheService`
driven through a :class:`~redkeep.sync.runner.LoopRunner`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from os import getpid
from typing import Any, TypeVar

from redkeep.cache.base import TTL, CacheService, CacheStats
from redkeep.sync._bound import Bound

__all__ = ["SyncCache"]

T = TypeVar("T")


class SyncCache(Bound[CacheService]):
    """Blocking twin of :class:`~redkeep.cache.base.CacheService`: same methods, same
    arguments, same errors, same fallback and breaker behaviour (it is the async cache, run to
    completion on the services' loop). Thread-safe; get one from
    :meth:`redkeep.sync.SyncServices.cache`."""

    _kind = "cache"

    @property
    def mode(self) -> str:
        """``"fallback"`` while a fallback cache serves from memory, else its backend kind."""
        return str(getattr(self.aio, "mode", type(self.aio).__name__))

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored at ``key``, or ``default`` when absent or expired."""
        runner, aio = self._bound()
        return runner.run(aio.get(key, default))

    def set(self, key: str, value: Any, ttl: TTL = None) -> None:
        """Store ``value`` at ``key`` (overwriting), expiring after ``ttl``."""
        runner, aio = self._bound()
        runner.run(aio.set(key, value, ttl))

    def add(self, key: str, value: Any, ttl: TTL = None) -> bool:
        """Store ``value`` only when ``key`` is absent; True when it was stored."""
        runner, aio = self._bound()
        return runner.run(aio.add(key, value, ttl))

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""
        runner, aio = self._bound()
        return runner.run(aio.delete(key))

    def has(self, key: str) -> bool:
        """True when ``key`` is present and not expired."""
        runner, aio = self._bound()
        return runner.run(aio.has(key))

    def clear(self) -> int:
        """Remove every key of this cache's namespace; returns how many were removed."""
        runner, aio = self._bound()
        return runner.run(aio.clear())

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The present keys among ``keys`` with their values."""
        runner, aio = self._bound()
        return runner.run(aio.get_many(list(keys) if not isinstance(keys, str) else keys))

    def set_many(self, mapping: Mapping[str, Any], ttl: TTL = None) -> None:
        """Store every pair; nothing is written if one fails to encode."""
        runner, aio = self._bound()
        runner.run(aio.set_many(mapping, ttl))

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove ``keys``; returns how many existed."""
        runner, aio = self._bound()
        return runner.run(aio.delete_many(list(keys) if not isinstance(keys, str) else keys))

    def incr(self, key: str, delta: int = 1) -> int:
        """Add ``delta`` to the integer at ``key`` (absent = 0) and return the new value."""
        runner, aio = self._bound()
        return runner.run(aio.incr(key, delta))

    def ttl(self, key: str) -> float | None:
        """Remaining seconds to live; None without expiry or when ``key`` does not exist."""
        runner, aio = self._bound()
        return runner.run(aio.ttl(key))

    def touch(self, key: str, ttl: TTL) -> bool:
        """Give ``key`` a new TTL; False when it does not exist."""
        runner, aio = self._bound()
        return runner.run(aio.touch(key, ttl))

    def get_or_set(self, key: str, factory: Callable[[], Any], ttl: TTL = None) -> Any:
        """The cached value at ``key``, or ``factory()``'s result, stored with ``ttl``.

        Single-flight across the threads (and, with a locked cache, the processes) sharing
        these services: one factory call per missing key; a factory error reaches every waiter
        and nothing is cached. ``factory`` runs in the calling thread, so it keeps that thread's
        state (database connection, transaction) and may use the sync API itself.
        """
        runner, aio = self._bound()

        async def fill() -> Any:
            return await runner.in_caller(lambda: _plain(factory))

        return runner.run_with_caller(aio.get_or_set(key, fill, ttl))

    def call(self, fn: Callable[[CacheService], Coroutine[Any, Any, T]]) -> T:
        """Run ``await fn(cache)`` with this process's async cache on the services' loop: for
        compositions of several operations (the Django backend's ``add`` with a zero timeout)."""
        runner, aio = self._bound()
        return runner.run(fn(aio))

    def items(self) -> Iterator[tuple[str, Any, float | None]]:
        """Iterate ``(key, value, remaining_ttl_seconds | None)`` over this cache's namespace."""
        runner, aio = self._bound()
        source = aio.items()
        try:
            while True:
                try:
                    item = runner.run(_anext(source))
                except StopAsyncIteration:
                    return
                yield item
        finally:
            if runner.pid == getpid() and not runner.loop.is_closed():
                runner.run(_aclose(source))

    def stats(self) -> CacheStats:
        """A snapshot of this cache's counters."""
        return self._bound()[1].stats()

    def __repr__(self) -> str:
        return f"SyncCache({self.name!r})"


def _plain(factory: Callable[[], Any]) -> Any:
    value = factory()
    if inspect.isawaitable(value):
        close = getattr(value, "close", None)
        if close is not None:
            close()  # a coroutine that will never run: no "never awaited" warning
        raise TypeError("the sync get_or_set takes a plain function, not an async one")
    return value


async def _anext(source: Any) -> Any:
    return await source.__anext__()


async def _aclose(source: Any) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()
