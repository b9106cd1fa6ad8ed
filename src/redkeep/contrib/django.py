"""Django integration (``pip install 'redkeep[django]'``): a cache backend and
``enqueue_on_commit``. See docs/django.md.

    CACHES = {
        "default": {
            "BACKEND": "redkeep.contrib.django.RedkeepCache",
            "LOCATION": "redis://127.0.0.1:6379/0",
            "OPTIONS": {"key_prefix": "myapp", "cache_name": "django"},
        }
    }

:class:`RedkeepCache` is a redkeep cache (fallback to memory while Redis is down, circuit
breaker, exact JSON values, never pickle) behind Django's cache API. Its sync methods run on the
process's :class:`~redkeep.sync.SyncServices` for that LOCATION and OPTIONS; its async methods
(``aget``, ``aset``...) run natively on the caller's event loop, on async services of their own
per loop (closed when the loop shuts down its async generators, as ``asyncio.run`` and ASGI
servers do). Both reach the same Redis keys; only while Redis is down do they answer from two
separate memory fallbacks.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.exceptions import ImproperlyConfigured

from redkeep.cache.base import CacheService
from redkeep.config import Settings
from redkeep.contrib._django_http import from_cache, to_cache
from redkeep.errors import SerializationError
from redkeep.queue.job import Job
from redkeep.services import Services
from redkeep.sync import SyncCache, SyncQueue, SyncServices

__all__ = ["RedkeepCache", "enqueue_on_commit", "sync_services"]

#: OPTIONS that Django's own backends read and that have no meaning here (Redis does not cull).
IGNORED_OPTIONS = frozenset({"MAX_ENTRIES", "CULL_FREQUENCY"})
_NEVER = 0.0  # a resolved Django timeout of 0 or less: do not store


class _Shared:
    """What every RedkeepCache with one LOCATION + OPTIONS shares in a process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sync = SyncServices(settings)
        self.loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[Services]]
        self.loops = weakref.WeakKeyDictionary()
        self.lifetimes: dict[int, AsyncIterator[None]] = {}

    async def services_for_loop(self) -> Services:
        loop = asyncio.get_running_loop()
        task = self.loops.get(loop)
        if task is not None and task.done() and not task.cancelled() and not task.exception():
            return task.result()  # the common case: started already
        if task is None:
            task = self.loops[loop] = loop.create_task(self._start(loop))
        try:
            return await asyncio.shield(task)
        except BaseException:
            if task.done() and self.loops.get(loop) is task:
                del self.loops[loop]  # let the next call try again
            raise

    async def _start(self, loop: asyncio.AbstractEventLoop) -> Services:
        services = Services(self.settings)
        await services.start()
        # An async generator held open: the loop's shutdown_asyncgens() closes it, which
        # closes these services with the loop.
        lifetime = _lifetime(services, self, loop)
        await lifetime.__anext__()
        self.lifetimes[id(loop)] = lifetime
        return services


async def _lifetime(
    services: Services, shared: _Shared, loop: asyncio.AbstractEventLoop
) -> AsyncIterator[None]:
    try:
        yield
    finally:
        shared.lifetimes.pop(id(loop), None)
        shared.loops.pop(loop, None)
        await services.close()


_shared: dict[tuple[str, tuple[tuple[str, str], ...]], _Shared] = {}
_shared_lock = threading.Lock()


def _settings(location: str | list[str] | None, options: Mapping[str, Any]) -> Settings:
    if isinstance(location, list | tuple):
        if len(location) != 1:
            raise ImproperlyConfigured("RedkeepCache takes one Redis URL as LOCATION")
        location = location[0]
    values: dict[str, Any] = {}
    for key, value in options.items():
        name = key.lower()
        if key.upper() in IGNORED_OPTIONS or name == "cache_name":
            continue
        if name not in Settings.model_fields:
            raise ImproperlyConfigured(
                f"unknown RedkeepCache option {key!r}: OPTIONS takes redkeep settings "
                "(docs/configuration.md) and 'cache_name'"
            )
        values[name] = value
    if location:
        values["redis_url"] = location
    # Django's TIMEOUT decides expiry: a timeout of None must mean "never expires".
    values["cache_default_ttl"] = None
    try:
        return Settings(**values)
    except ValueError as exc:  # ConfigError names the setting; no secret is in its text
        raise ImproperlyConfigured(f"RedkeepCache LOCATION or OPTIONS: {exc}") from exc


def _shared_for(location: Any, options: Mapping[str, Any]) -> _Shared:
    key = (str(location), tuple(sorted((str(k), repr(v)) for k, v in options.items())))
    with _shared_lock:
        shared = _shared.get(key)
        if shared is None:
            shared = _shared[key] = _Shared(_settings(location, options))
        return shared


def sync_services(alias: str = "default") -> SyncServices:
    """The :class:`~redkeep.sync.SyncServices` behind the RedkeepCache ``alias``: its queues
    share the cache's connection (``sync_services().queue("emails")``)."""
    from django.core.cache import caches

    backend = caches[alias]
    if not isinstance(backend, RedkeepCache):
        raise ImproperlyConfigured(f"cache {alias!r} is not a RedkeepCache")
    return backend.services


class RedkeepCache(BaseCache):  # type: ignore[misc]
    """Django cache backend on redkeep. ``LOCATION``: a ``redis://``/``rediss://`` URL (empty:
    the ``REDKEEP_*`` environment). ``OPTIONS``: redkeep settings by name (``key_prefix``,
    ``cache_fallback``, ``command_timeout``...) and ``cache_name`` (default ``"django"``)."""

    def __init__(self, server: str | list[str] | None, params: dict[str, Any]) -> None:
        super().__init__(params)
        options = dict(params.get("OPTIONS") or {})
        self.cache_name = str(options.get("cache_name", "django"))
        self._shared = _shared_for(server, options)
        self._sync_cache: SyncCache | None = None

    @property
    def services(self) -> SyncServices:
        """The sync services this backend runs on (shared by every backend with the same
        LOCATION and OPTIONS in this process)."""
        return self._shared.sync

    @property
    def cache(self) -> SyncCache:
        """The redkeep sync cache holding this backend's entries."""
        if self._sync_cache is None:
            self._sync_cache = self._shared.sync.cache(self.cache_name)
        return self._sync_cache

    async def _acache(self) -> CacheService:
        return (await self._shared.services_for_loop()).cache(self.cache_name)

    def _ttl(self, timeout: Any) -> float | None:
        """Django's timeout as redkeep's: seconds, None (never expires) or 0.0 (do not store)."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        return max(_NEVER, float(timeout))

    def _keys(self, keys: Iterable[str], version: int | None) -> dict[str, str]:
        return {self.make_and_validate_key(k, version=version): k for k in keys}

    # -- sync API ---------------------------------------------------------------------------------
    def add(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> bool:
        k = self.make_and_validate_key(key, version=version)
        value = to_cache(value)
        return bool(self.cache.call(lambda c: _add(c, k, value, self._ttl(timeout))))

    def get(self, key: str, default: Any = None, version: Any = None) -> Any:
        return from_cache(self.cache.get(self.make_and_validate_key(key, version=version), default))

    def set(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> None:
        k = self.make_and_validate_key(key, version=version)
        ttl = self._ttl(timeout)
        if ttl == _NEVER:
            self.cache.delete(k)
        else:
            self.cache.set(k, to_cache(value), ttl)

    def touch(self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> bool:
        k = self.make_and_validate_key(key, version=version)
        return bool(self.cache.call(lambda c: _touch(c, k, self._ttl(timeout))))

    def delete(self, key: str, version: Any = None) -> bool:
        return self.cache.delete(self.make_and_validate_key(key, version=version))

    def has_key(self, key: str, version: Any = None) -> bool:
        return self.cache.has(self.make_and_validate_key(key, version=version))

    def get_many(self, keys: Iterable[str], version: Any = None) -> dict[str, Any]:
        made = self._keys(keys, version)
        return {made[k]: from_cache(v) for k, v in self.cache.get_many(made).items()}

    def set_many(
        self, data: Mapping[str, Any], timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> list[str]:
        mapping = {
            self.make_and_validate_key(k, version=version): to_cache(v) for k, v in data.items()
        }
        ttl = self._ttl(timeout)
        if ttl == _NEVER:
            self.cache.delete_many(mapping)
        else:
            self.cache.set_many(mapping, ttl)
        return []  # all or nothing: an encoding error raises before anything is written

    def delete_many(self, keys: Iterable[str], version: Any = None) -> None:
        self.cache.delete_many(self._keys(keys, version))

    def incr(self, key: str, delta: int = 1, version: Any = None) -> int:
        k = self.make_and_validate_key(key, version=version)
        return int(self.cache.call(lambda c: _incr(c, k, key, delta)))

    def get_or_set(
        self,
        key: str,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: Any = None,
    ) -> Any:
        """Django's get_or_set; with a callable ``default``, single-flight (one call per
        missing key among the threads of this process)."""
        ttl = self._ttl(timeout)
        if not callable(default) or ttl == _NEVER:
            return super().get_or_set(key, default, timeout, version)
        k = self.make_and_validate_key(key, version=version)
        return from_cache(self.cache.get_or_set(k, lambda: to_cache(default()), ttl))

    def clear(self) -> None:
        self.cache.clear()

    def close(self, **kwargs: Any) -> None:
        """Kept open: Django calls this after every request, and the connection is shared."""

    # -- async API --------------------------------------------------------------------------------
    async def aadd(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> bool:
        k = self.make_and_validate_key(key, version=version)
        return await _add(await self._acache(), k, to_cache(value), self._ttl(timeout))

    async def aget(self, key: str, default: Any = None, version: Any = None) -> Any:
        k = self.make_and_validate_key(key, version=version)
        return from_cache(await (await self._acache()).get(k, default))

    async def aset(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> None:
        k = self.make_and_validate_key(key, version=version)
        ttl = self._ttl(timeout)
        cache = await self._acache()
        if ttl == _NEVER:
            await cache.delete(k)
        else:
            await cache.set(k, to_cache(value), ttl)

    async def atouch(self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> bool:
        k = self.make_and_validate_key(key, version=version)
        return await _touch(await self._acache(), k, self._ttl(timeout))

    async def adelete(self, key: str, version: Any = None) -> bool:
        k = self.make_and_validate_key(key, version=version)
        return await (await self._acache()).delete(k)

    async def ahas_key(self, key: str, version: Any = None) -> bool:
        k = self.make_and_validate_key(key, version=version)
        return await (await self._acache()).has(k)

    async def aget_many(self, keys: Iterable[str], version: Any = None) -> dict[str, Any]:
        made = self._keys(keys, version)
        found = await (await self._acache()).get_many(made)
        return {made[k]: from_cache(v) for k, v in found.items()}

    async def aset_many(
        self, data: Mapping[str, Any], timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> list[str]:
        mapping = {
            self.make_and_validate_key(k, version=version): to_cache(v) for k, v in data.items()
        }
        ttl = self._ttl(timeout)
        cache = await self._acache()
        if ttl == _NEVER:
            await cache.delete_many(mapping)
        else:
            await cache.set_many(mapping, ttl)
        return []

    async def adelete_many(self, keys: Iterable[str], version: Any = None) -> None:
        await (await self._acache()).delete_many(self._keys(keys, version))

    async def aincr(self, key: str, delta: int = 1, version: Any = None) -> int:
        k = self.make_and_validate_key(key, version=version)
        return await _incr(await self._acache(), k, key, delta)

    async def aget_or_set(
        self,
        key: str,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: Any = None,
    ) -> Any:
        """Django's aget_or_set; with a callable ``default``, single-flight per event loop."""
        ttl = self._ttl(timeout)
        if not callable(default) or ttl == _NEVER:
            return await super().aget_or_set(key, default, timeout, version)
        k = self.make_and_validate_key(key, version=version)
        cache = await self._acache()
        return from_cache(await cache.get_or_set(k, lambda: _to_cache_async(default), ttl))

    async def aclear(self) -> None:
        await (await self._acache()).clear()

    async def aclose(self, **kwargs: Any) -> None:
        """Kept open (see :meth:`close`)."""


async def _to_cache_async(default: Callable[[], Any]) -> Any:
    value = default()
    if inspect.isawaitable(value):  # aget_or_set accepts a coroutine function as default
        value = await value
    return to_cache(value)


# -- operations with Django semantics, shared by the sync and async methods ---------------------
async def _add(cache: CacheService, key: str, value: Any, ttl: float | None) -> bool:
    if ttl != _NEVER:
        return await cache.add(key, value, ttl)
    # Stored and expired at once: True when the key was free, and it stays free.
    added = await cache.add(key, value, 1)
    if added:
        await cache.delete(key)
    return added


async def _touch(cache: CacheService, key: str, ttl: float | None) -> bool:
    if ttl == _NEVER:
        return await cache.delete(key)
    return await cache.touch(key, ttl)


async def _incr(cache: CacheService, key: str, shown: str, delta: int) -> int:
    # Django raises ValueError for a missing key, where redkeep's incr starts from 0. As in
    # Django's own Redis backend, the check and the increment are two commands.
    if not await cache.has(key):
        raise ValueError(f"Key {shown!r} not found")
    try:
        return await cache.incr(key, delta)
    except SerializationError as exc:
        raise TypeError(f"the value of key {shown!r} is not an integer") from exc


# -- transactional enqueue ----------------------------------------------------------------------
def enqueue_on_commit(
    queue: str | SyncQueue,
    name: str,
    payload: Any = None,
    *,
    using: str | None = None,
    cache_alias: str = "default",
    on_enqueued: Callable[[Job], Any] | None = None,
    **options: Any,
) -> None:
    """Enqueue job ``name`` on ``queue`` once the current transaction of database ``using``
    commits; never when it rolls back. Outside a transaction (autocommit), at once.

    ``queue`` is a :class:`~redkeep.sync.SyncQueue` or a queue name, opened on the sync
    services of the RedkeepCache ``cache_alias``. ``options`` are
    :meth:`JobQueue.enqueue <redkeep.queue.base.JobQueue.enqueue>`'s (``job_id``, ``priority``,
    ``delay``...), ``on_enqueued`` receives the :class:`~redkeep.queue.job.Job`. The payload is
    encoded when the transaction commits. An enqueue that fails after the commit raises from
    the commit (``transaction.on_commit(..., robust=False)``): the data is committed, the job
    is not; give a ``job_id`` to make a retry safe.
    """
    from django.db import transaction

    def send() -> None:
        target = queue if isinstance(queue, SyncQueue) else sync_services(cache_alias).queue(queue)
        job = target.enqueue(name, payload, **options)
        if on_enqueued is not None:
            on_enqueued(job)

    transaction.on_commit(send, using=using)
