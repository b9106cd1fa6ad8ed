"""Readiness and metrics of :class:`~redkeep.services.Services`: the ``/health/ready`` report
(backend, caches, queues, outbox; never a secret) and the snapshot taken before each scrape."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from redkeep.cache.base import CacheService
from redkeep.cache.manager import CacheManager
from redkeep.cache.tiered import TieredCache
from redkeep.config import Settings, redact_url
from redkeep.errors import RedkeepError, scrub
from redkeep.monitoring.metrics import L1Snapshot, Metrics
from redkeep.monitoring.probes import pool_in_use, queue_depth
from redkeep.queue.base import JobQueue
from redkeep.queue.outbox import Outbox
from redkeep.redis.base import RedisClient

if TYPE_CHECKING:
    from redkeep.redis.connection import ConnectionManager

__all__ = ["ServicesHealth"]


class ServicesHealth:
    """Mixin for :class:`~redkeep.services.Services`."""

    settings: Settings
    metrics: Metrics
    backend: str
    client: RedisClient | None
    connection: ConnectionManager | None
    caches: CacheManager | None
    outbox: Outbox | None
    degraded_reason: str | None
    warnings: list[str]
    eviction_policy: str | None
    _queues: dict[str, JobQueue]

    if TYPE_CHECKING:  # provided by Services and StartupChecks

        def queue_names(self) -> list[str]: ...
        async def _validate(self) -> str | None: ...

    async def health(self) -> dict[str, Any]:
        """Readiness report: ``ready`` plus per-component status (no secrets)."""
        components: dict[str, Any] = {}
        ready = True
        if self.client is None:
            components["backend"] = {"status": "up", "backend": "memory", "durable": False}
        else:
            backend: dict[str, Any] = {
                "status": "up",
                "backend": self.backend,
                "transport": self.client.transport,
                "url": redact_url(self.settings.upstash_url)
                if self.backend == "upstash"
                else self.settings.redis_url_redacted,
                "state": self.connection.state if self.connection is not None else None,
                "eviction_policy": self.eviction_policy,
            }
            timeout = min(self.settings.command_timeout, 2.0)
            start = time.perf_counter()
            try:
                await asyncio.wait_for(self.client.ping(), timeout)
                backend["latency_ms"] = round((time.perf_counter() - start) * 1000, 3)
            except (RedkeepError, TimeoutError) as exc:
                ready = False
                backend["status"] = "down"
                backend["reason"] = f"{type(exc).__name__}: {scrub(str(exc))}"
            else:
                if self.degraded_reason is not None:  # back after a degraded start
                    self.degraded_reason = await self._validate()
            components["backend"] = backend
        caches: dict[str, Any] = {}
        for name, cache in self._caches().items():
            entry: dict[str, Any] = {"status": "up", "backend": type(cache).__name__}
            if _on_fallback(cache):
                entry["status"] = "fallback"
                entry["reason"] = "serving from the memory fallback while Redis is unavailable"
            if isinstance(cache, TieredCache):
                entry["l1"] = cache.l1_status()
            caches[name] = entry
        components["caches"] = {
            "breaker": self.caches.breaker.state if self.caches is not None else None,
            "caches": caches,
        }
        components["queues"] = {
            "status": components["backend"]["status"],
            "names": self.queue_names(),
        }
        reason = self.degraded_reason
        if not ready and reason is None:
            reason = components["backend"].get("reason")
        if self.outbox is not None:
            outbox = components["outbox"] = await self._outbox_health()
            if not ready and outbox["status"] in ("empty", "holding"):
                # Enqueues still succeed (held locally): serve, degraded.
                ready = True
                components["queues"]["status"] = "outbox"
                reason = f"{reason}; enqueues are held in the outbox until Redis is back"
        status = "ready" if ready and reason is None else ("degraded" if ready else "unavailable")
        return {
            "ready": ready,
            "status": status,
            "reason": reason,
            "backend": self.backend,
            "warnings": list(self.warnings),
            "components": components,
        }

    async def _outbox_health(self) -> dict[str, Any]:
        assert self.outbox is not None
        try:
            return await self.outbox.health()
        except RedkeepError as exc:  # the file went away or the disk fails
            return {"status": "failing", "reason": f"{type(exc).__name__}: {scrub(str(exc))}"}

    async def refresh_metrics(self) -> None:
        """Snapshot cache stats, queue depth, connection and breaker state into the metrics."""
        m = self.metrics
        for name, cache in self._caches().items():
            l1 = None
            if isinstance(cache, TieredCache):
                l1 = L1Snapshot(cache.l1_state == "bypassed", len(cache.l1), cache.l1.bytes)
            m.set_cache(name, cache.stats(), on_fallback=_on_fallback(cache), l1=l1)
        if self.caches is not None:
            m.set_breaker_state(self.caches.breaker.name, self.caches.breaker.state)
        if self.outbox is not None:
            m.set_breaker_state(self.outbox.breaker.name, self.outbox.breaker.state)
            with contextlib.suppress(RedkeepError):
                m.set_outbox(await self.outbox.stats())
        if self.client is not None and self.connection is not None:
            m.set_connection(
                "redis",
                self.client.transport,
                self.connection.state,
                pool_in_use=pool_in_use(self.client),
                latency=self.connection.last_latency,
            )
        if self.connection is not None and self.connection.state != "ready":
            return  # keep the last known depth rather than waiting out timeouts per queue
        queues = list(self._queues.values())
        results = await asyncio.gather(*(queue_depth(q) for q in queues), return_exceptions=True)
        flags = await asyncio.gather(*(q.is_paused() for q in queues), return_exceptions=True)
        for name, result, flag in zip(list(self._queues), results, flags, strict=True):
            if isinstance(result, BaseException):
                continue  # the queue's backend is down: keep the last known depth
            counts, age = result
            m.set_queue(name, counts, age, None if isinstance(flag, BaseException) else flag)

    def _caches(self) -> dict[str, CacheService]:
        if self.caches is None:
            return {}
        return {name: self.caches.get(name) for name in self.caches.names()}


def _on_fallback(cache: CacheService) -> bool:
    return getattr(cache, "mode", None) == "fallback"
