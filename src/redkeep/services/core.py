"""The :class:`Services` object: builds and owns the backend connection, the cache manager,
the job queues and the metrics (see :mod:`redkeep.services`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from redkeep.cache.base import CacheService
from redkeep.cache.manager import CacheManager
from redkeep.cache.memory import MemoryCache
from redkeep.cache.redis import RedisCache
from redkeep.config import Settings, redact_url
from redkeep.errors import RedkeepError, StartupError
from redkeep.monitoring.metrics import Metrics
from redkeep.names import check_name
from redkeep.queue.base import JobQueue
from redkeep.queue.memory import MemoryJobQueue
from redkeep.queue.outbox import Outbox
from redkeep.queue.redis import RedisJobQueue
from redkeep.queue.worker import Worker
from redkeep.queue.workers import WorkerRegistry, registry_of
from redkeep.redis.base import RedisClient
from redkeep.redis.factory import create_client
from redkeep.services.checks import StartupChecks
from redkeep.services.health import ServicesHealth

if TYPE_CHECKING:
    from redkeep.redis.connection import ConnectionManager

__all__ = ["MAX_NAMED", "MEMORY_WARNING", "Services", "create_services"]

log = logging.getLogger("redkeep.services")

MEMORY_WARNING = (
    "redkeep is using in-memory backends (no REDKEEP_REDIS_URL or Upstash credentials set): "
    "caches and queued jobs do NOT survive a restart"
)
MAX_NAMED = 256  # caches or queues one service creates on demand (bounds memory and metrics)


class Services(StartupChecks, ServicesHealth):
    """Connection manager, caches, queues and metrics built from :class:`Settings`.

    Use as an async context manager (or call :meth:`start` and :meth:`close`).
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self.metrics = Metrics()
        self.backend = self.settings.effective_backend
        self.client: RedisClient | None = None
        self.connection: ConnectionManager | None = None
        self.caches: CacheManager | None = None
        self.degraded_reason: str | None = None
        """Why the backend is not (fully) usable, or None."""
        self.warnings: list[str] = []
        """Startup warnings (memory backend, evicting maxmemory-policy...)."""
        self.eviction_policy: str | None = None
        self.outbox: Outbox | None = None
        """The enqueue outbox (``REDKEEP_QUEUE_OUTBOX``), or None."""
        self._queues: dict[str, JobQueue] = {}
        self._connecting: asyncio.Task[Any] | None = None
        self._started = False
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> Services:
        """Connect and validate the backend, build the cache manager. Idempotent."""
        if self._started:
            return self
        self._started = True
        s = self.settings
        if self.backend == "memory":
            self._warn(MEMORY_WARNING)
            if s.queue_outbox is not None:
                self._warn("REDKEEP_QUEUE_OUTBOX is ignored: the memory backend never goes away")
        else:
            self.client = create_client(s, observer=self.metrics)
            if self.client is None:  # pragma: no cover - factory returns None only for memory
                raise StartupError(f"no client for backend {self.backend!r}")
            try:
                await self._open_outbox()
                await self._connect()
            except BaseException:
                if self.connection is not None:
                    await self.connection.close()
                await self._close_outbox()
                await self._close_client()
                raise
        self.caches = CacheManager(s, client=self.client)
        self._watch_breakers()
        return self

    async def _connect(self) -> None:
        assert self.client is not None
        from redkeep.redis.connection import ConnectionManager

        self.connection = ConnectionManager(self.client, self.settings)
        if self.settings.startup == "strict":
            await self._wait_reachable(self.connection)
        problem = await self._validate()
        if problem is None:
            await self.connection.start()  # reachable: returns after one PING
            return
        if self.settings.startup == "strict":
            raise StartupError(f"strict startup: {problem}")
        # Degraded: serve now; the manager keeps connecting in the background and the next
        # successful readiness probe re-validates the backend.
        self.degraded_reason = problem
        log.warning("starting degraded: %s", problem)
        if self.outbox is not None:
            self.outbox.breaker.trip()  # hold enqueues at once; the relay probes
        self._connecting = asyncio.create_task(self.connection.start(), name="redkeep-connect")

    async def _open_outbox(self) -> None:
        """Open the enqueue outbox when configured: a file that is not a sound outbox stops
        the start (:class:`~redkeep.errors.OutboxCorrupted`), whatever ``startup`` says."""
        if self.settings.queue_outbox is None:
            return
        outbox = Outbox.from_settings(self.settings, queue_factory=self.queue)
        await outbox.open()
        self.outbox = outbox
        breaker = outbox.breaker
        self.metrics.set_breaker_state(breaker.name, breaker.state)
        breaker.add_listener(self.metrics.breaker_changed)

    async def _close_outbox(self) -> None:
        if self.outbox is not None:
            outbox, self.outbox = self.outbox, None
            await outbox.close()

    async def close(self) -> None:
        """Close queues, caches, the connection manager and the client. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for queue in list(self._queues.values()):
            try:
                await queue.close()
            except Exception as exc:
                log.warning("closing queue %r failed: %s", queue.name, type(exc).__name__)
        self._queues.clear()
        await self._close_outbox()
        if self.caches is not None:
            await self.caches.close()
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
            self._connecting = None
        if self.connection is not None:
            await self.connection.close()
        await self._close_client()

    async def _close_client(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            await client.close()

    async def __aenter__(self) -> Services:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- components -----------------------------------------------------------------------------
    def cache(self, name: str = "default") -> CacheService:
        """The named cache (created on first use)."""
        if self.caches is None:
            raise RedkeepError("services are not started: use 'async with create_services()'")
        known = self.caches.names()
        if name not in known and len(known) >= MAX_NAMED:
            raise ValueError(
                f"too many caches: a service opens at most {MAX_NAMED} (reads of other names "
                "still work)"
            )
        return self.caches.get(name)

    def queue(self, name: str = "default") -> JobQueue:
        """The named job queue (created on first use)."""
        queue = self._queues.get(name)
        if queue is not None:
            return queue
        if not self._started or self._closed:
            raise RedkeepError("services are not started: use 'async with create_services()'")
        if len(self._queues) >= MAX_NAMED:
            raise ValueError(
                f"too many queues: a service opens at most {MAX_NAMED} (reads of other names "
                "still work)"
            )
        if self.client is None:
            queue = MemoryJobQueue.from_settings(name, self.settings)
        else:
            queue = RedisJobQueue.from_settings(self.client, name, self.settings)
            if self.outbox is not None:
                self.outbox.attach(queue)
        self._queues[name] = queue
        return queue

    def cache_view(self, name: str) -> CacheService:
        """Cache ``name`` for reads and deletes, without opening it.

        The open cache when there is one; else a transient cache that is not kept: on Redis
        over the shared client (other processes may have written entries), on memory an empty
        one (nobody wrote to it). Unlike :meth:`cache` this never takes one of the
        ``MAX_NAMED`` slots, so probing unknown names cannot lock new caches out.
        """
        if self.caches is None:
            raise RedkeepError("services are not started: use 'async with create_services()'")
        check_name(name, "cache name")
        if name in self.caches.names():
            return self.caches.get(name)
        s = self.settings
        if self.client is None or self.caches.backend_of(name) == "memory":
            return MemoryCache(
                name, max_key_length=s.cache_max_key_length, serializer=self.caches.serializer
            )
        return RedisCache(
            self.client,
            name,
            key_prefix=s.key_prefix,
            max_key_length=s.cache_max_key_length,
            serializer=self.caches.serializer,
        )

    def keep_cache(self, name: str) -> None:
        """Open cache ``name`` after a read through :meth:`cache_view` found an entry in it, so
        that its counters are kept from now on; a no-op when it is open or the table is full.
        Only names that hold data can be opened this way, never probed ones."""
        if self.caches is not None and name not in self.caches.names():
            with contextlib.suppress(ValueError):
                self.cache(name)

    def queue_view(self, name: str) -> JobQueue:
        """Queue ``name`` for reads and changes to existing jobs, without opening it.

        The open queue when there is one; else a transient queue that is not kept: on Redis
        over the shared client (with the jobs other processes enqueued), on memory an empty
        one. Like :meth:`cache_view`, it never takes one of the ``MAX_NAMED`` slots.
        """
        queue = self._queues.get(name)
        if queue is not None:
            return queue
        if not self._started or self._closed:
            raise RedkeepError("services are not started: use 'async with create_services()'")
        if self.client is None:
            return MemoryJobQueue(name)
        return RedisJobQueue.from_settings(self.client, name, self.settings)

    def queue_names(self) -> list[str]:
        """Names of the queues this service has opened."""
        return sorted(self._queues)

    def workers(self) -> WorkerRegistry:
        """The worker registry of the backend: on Redis every worker under the key prefix, on
        memory the workers of this service's queues (see :mod:`redkeep.queue.workers`)."""
        return registry_of(self.client, self.settings.key_prefix, self._queues.values())

    def worker(
        self,
        handlers: Mapping[str, Callable[..., Any]],
        *,
        queues: list[str] | None = None,
        **options: Any,
    ) -> Worker:
        """A worker for ``handlers`` on ``queues`` (default ``["default"]``), reporting to the
        metrics; ``options`` override the settings' concurrency, lease and grace period."""
        qs = [self.queue(n) for n in (queues or ["default"])]
        options.setdefault("observer", self.metrics)
        return Worker.from_settings(qs, handlers, self.settings, **options)

    def _where(self) -> str:
        s = self.settings
        if self.backend == "upstash":
            return f"Upstash at {redact_url(s.upstash_url)}"
        return f"Redis at {s.redis_url_redacted}"

    def _warn(self, message: str) -> None:
        if message not in self.warnings:  # re-validation after an outage warns only once
            self.warnings.append(message)
            log.warning("%s", message)

    def _watch_breakers(self) -> None:
        if self.caches is None:
            return
        breaker = self.caches.breaker
        self.metrics.set_breaker_state(breaker.name, breaker.state)
        breaker.add_listener(self.metrics.breaker_changed)
        if self.degraded_reason is not None and self.client is not None:
            breaker.trip()  # start the caches on their fallback right away


def create_services(settings: Settings | None = None) -> Services:
    """The services for ``settings`` (default: from the environment); start them with
    ``async with``."""
    return Services(settings)
