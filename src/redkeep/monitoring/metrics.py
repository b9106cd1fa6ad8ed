"""Prometheus metrics for one :class:`~redkeep.services.Services` instance.

Every :class:`Metrics` owns its own ``CollectorRegistry`` (no module globals), so several
service instances (tests, embedded apps) never share or clash over series. Event metrics are
fed by hooks: :meth:`Metrics.on_command` is the Redis clients' ``CommandObserver``,
:meth:`Metrics.on_job_finished` / :meth:`~Metrics.on_retry` / :meth:`~Metrics.on_recovered`
are the worker's ``WorkerObserver``, and :meth:`Metrics.observe_http` is called by the ASGI
middleware. Gauges that describe current state (cache stats, queue depth, connection and
breaker state) are set from a snapshot taken right before each scrape (see
:meth:`redkeep.services.Services.refresh_metrics`) and rendered by a custom collector, so
series of removed caches or queues disappear instead of going stale.

Labels only ever carry names chosen by the application (cache, queue, handler, route template,
command name, error category): never keys, payloads, URLs or secrets.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from redkeep.monitoring.outbox import outbox_families

if TYPE_CHECKING:
    from redkeep.queue.outbox import OutboxStats

__all__ = ["CONTENT_TYPE", "CacheSnapshot", "L1Snapshot", "Metrics", "QueueSnapshot"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_JOB_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
_HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

#: Counters read from a cache's ``CacheStats`` at scrape time (absent fields are skipped).
CACHE_STAT_FIELDS = (
    "hits",
    "misses",
    "sets",
    "deletes",
    "errors",
    "fallback_reads",
    "fallback_writes",
    "l1_hits",
    "l1_misses",
    "l1_bypassed_reads",
    "l1_invalidations",
)
CONNECTION_STATES = ("connecting", "ready", "degraded", "closed")
BREAKER_STATES = ("closed", "open", "half_open")


@dataclass
class CacheSnapshot:
    """Counters of one named cache at scrape time, plus whether it is serving from fallback."""

    counters: dict[str, float] = field(default_factory=dict)
    on_fallback: bool = False
    l1: L1Snapshot | None = None
    """The L1 of a tiered cache (None for other caches)."""


@dataclass
class L1Snapshot:
    """State of a tiered cache's in-process L1 at scrape time."""

    bypassed: bool
    entries: int
    bytes: int


@dataclass
class QueueSnapshot:
    """Depth of one queue at scrape time."""

    counts: dict[str, int] = field(default_factory=dict)
    oldest_waiting_age: float | None = None
    paused: bool | None = None


@dataclass
class ConnectionSnapshot:
    """State of one backend connection at scrape time."""

    transport: str
    state: str
    pool_in_use: int | None = None
    latency: float | None = None


class _StateCollector:
    """Renders the latest scrape-time snapshot held by :class:`Metrics`."""

    def __init__(self, owner: Metrics) -> None:
        self._owner = owner

    def collect(self) -> Iterable[Metric]:
        o = self._owner
        with o._lock:
            caches = dict(o._caches)
            queues = dict(o._queues)
            conns = dict(o._connections)
            breakers = dict(o._breaker_states)
            outbox = o._outbox
        yield from self._cache_families(caches)
        yield from self._queue_families(queues)
        if outbox is not None:
            yield from outbox_families(outbox)
        yield from self._connection_families(conns)
        state = GaugeMetricFamily(
            "redkeep_breaker_state",
            "Circuit breaker state (1 for the current state).",
            labels=["breaker", "state"],
        )
        for name, current in sorted(breakers.items()):
            for s in BREAKER_STATES:
                state.add_metric([name, s], 1.0 if s == current else 0.0)
        yield state

    @staticmethod
    def _cache_families(caches: Mapping[str, CacheSnapshot]) -> Iterable[Metric]:
        fams = {
            f: CounterMetricFamily(
                f"redkeep_cache_{f}",
                f"Cache {f.replace('_', ' ')} since start (from CacheStats at scrape time).",
                labels=["cache"],
            )
            for f in CACHE_STAT_FIELDS
        }
        fallback = GaugeMetricFamily(
            "redkeep_cache_on_fallback",
            "1 while the cache serves from its memory fallback.",
            labels=["cache"],
        )
        bypassed = GaugeMetricFamily(
            "redkeep_cache_l1_bypassed",
            "1 while a tiered cache's L1 is bypassed (invalidation channel lost or lagging, "
            "or the L2 on its fallback).",
            labels=["cache"],
        )
        l1_entries = GaugeMetricFamily(
            "redkeep_cache_l1_entries", "Entries held in a tiered cache's L1.", labels=["cache"]
        )
        l1_bytes = GaugeMetricFamily(
            "redkeep_cache_l1_bytes",
            "Approximate bytes held in a tiered cache's L1.",
            labels=["cache"],
        )
        for name, snap in sorted(caches.items()):
            for f, value in snap.counters.items():
                if f in fams:
                    fams[f].add_metric([name], value)
            fallback.add_metric([name], 1.0 if snap.on_fallback else 0.0)
            if snap.l1 is not None:
                bypassed.add_metric([name], 1.0 if snap.l1.bypassed else 0.0)
                l1_entries.add_metric([name], float(snap.l1.entries))
                l1_bytes.add_metric([name], float(snap.l1.bytes))
        yield from fams.values()
        yield fallback
        yield bypassed
        yield l1_entries
        yield l1_bytes

    @staticmethod
    def _queue_families(queues: Mapping[str, QueueSnapshot]) -> Iterable[Metric]:
        depth = GaugeMetricFamily(
            "redkeep_queue_jobs", "Jobs in the queue per status.", labels=["queue", "status"]
        )
        oldest = GaugeMetricFamily(
            "redkeep_queue_oldest_waiting_age_seconds",
            "Age of the oldest waiting job (0 when none waits).",
            labels=["queue"],
        )
        paused = GaugeMetricFamily(
            "redkeep_queue_paused", "1 while the queue is paused (no job starts), else 0.",
            labels=["queue"],
        )  # fmt: skip
        for name, snap in sorted(queues.items()):
            for status, count in sorted(snap.counts.items()):
                depth.add_metric([name, status], float(count))
            oldest.add_metric([name], snap.oldest_waiting_age or 0.0)
            if snap.paused is not None:
                paused.add_metric([name], float(snap.paused))
        yield depth
        yield oldest
        yield paused

    @staticmethod
    def _connection_families(conns: Mapping[str, ConnectionSnapshot]) -> Iterable[Metric]:
        state = GaugeMetricFamily(
            "redkeep_connection_state",
            "Backend connection state (1 for the current state).",
            labels=["connection", "transport", "state"],
        )
        in_use = GaugeMetricFamily(
            "redkeep_connection_pool_in_use",
            "Connections currently checked out of the pool.",
            labels=["connection", "transport"],
        )
        latency = GaugeMetricFamily(
            "redkeep_connection_ping_seconds",
            "Round trip of the last health ping.",
            labels=["connection", "transport"],
        )
        for name, c in sorted(conns.items()):
            for s in CONNECTION_STATES:
                state.add_metric([name, c.transport, s], 1.0 if s == c.state else 0.0)
            if c.pool_in_use is not None:
                in_use.add_metric([name, c.transport], float(c.pool_in_use))
            if c.latency is not None:
                latency.add_metric([name, c.transport], c.latency)
        yield state
        yield in_use
        yield latency


class Metrics:
    """The Prometheus registry and hooks of one service instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.redis_command_seconds = Histogram(
            "redkeep_redis_command_duration_seconds",
            "Redis command latency by command and transport.",
            ["transport", "command"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter(
            "redkeep_redis_errors",
            "Failed Redis commands by transport and error category.",
            ["transport", "category"],
            registry=r,
        )
        self.breaker_transitions = Counter(
            "redkeep_breaker_transitions",
            "Circuit breaker state changes.",
            ["breaker", "from_state", "to_state"],
            registry=r,
        )
        self.job_seconds = Histogram(
            "redkeep_job_duration_seconds",
            "Job run time per handler and outcome.",
            ["queue", "handler", "status"],
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.job_retries = Counter(
            "redkeep_job_retries",
            "Failed attempts scheduled for retry.",
            ["queue", "handler"],
            registry=r,
        )
        self.jobs_recovered = Counter(
            "redkeep_jobs_recovered",
            "Jobs moved back to waiting after their lease expired.",
            ["queue"],
            registry=r,
        )
        self.stuck_threads = Gauge(
            "redkeep_worker_stuck_threads",
            "Sync handler threads still running after their attempt ended (timed out, cancelled "
            "or released); each holds a worker slot until it returns.",
            ["queue", "handler"],
            registry=r,
        )
        self.http_requests = Counter(
            "redkeep_http_requests",
            "HTTP requests by route template, method and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "redkeep_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["method", "route"],
            buckets=_HTTP_BUCKETS,
            registry=r,
        )
        # Labelled children by label values: labels() costs more than observe() on hot paths.
        # Bounded: commands are a fixed set, queues and handlers are named in code.
        self._command_series: dict[tuple[str, str], Any] = {}
        self._job_series: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()
        self._caches: dict[str, CacheSnapshot] = {}
        self._queues: dict[str, QueueSnapshot] = {}
        self._connections: dict[str, ConnectionSnapshot] = {}
        self._breaker_states: dict[str, str] = {}
        self._outbox: OutboxStats | None = None
        r.register(_StateCollector(self))

    # -- CommandObserver ----------------------------------------------------------------------
    def on_command(self, transport: str, command: str, seconds: float, error: str | None) -> None:
        """Record one Redis command (the Redis clients' observer hook)."""
        series = self._command_series.get((transport, command))
        if series is None:
            series = self.redis_command_seconds.labels(transport, command.upper())
            self._command_series[(transport, command)] = series
        series.observe(seconds)
        if error is not None:
            self.redis_errors.labels(transport, error).inc()

    # -- WorkerObserver -----------------------------------------------------------------------
    def on_job_finished(self, queue: str, handler: str, status: str, seconds: float) -> None:
        """Record a finished attempt (completed, failed, retried, cancelled...)."""
        key = (queue, handler, status)
        series = self._job_series.get(key)
        if series is None:
            series = self._job_series[key] = self.job_seconds.labels(queue, handler, str(status))
        series.observe(seconds)

    def on_retry(self, queue: str, handler: str) -> None:
        """Count a failed attempt that was scheduled for a retry."""
        self.job_retries.labels(queue, handler).inc()

    def on_recovered(self, queue: str, count: int) -> None:
        """Count jobs recovered from expired leases."""
        if count > 0:
            self.jobs_recovered.labels(queue).inc(count)

    def on_stuck_thread(self, queue: str, handler: str, delta: int) -> None:
        """Count handler threads that outlived their attempt (+1) and have returned (-1)."""
        self.stuck_threads.labels(queue, handler).inc(delta)

    # -- HTTP ---------------------------------------------------------------------------------
    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one HTTP request (called by the ASGI middleware)."""
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_seconds.labels(method, route).observe(seconds)

    # -- breakers -----------------------------------------------------------------------------
    def breaker_changed(self, name: str, old: str, new: str) -> None:
        """Record a breaker transition and its new state."""
        old, new = _state_name(old), _state_name(new)
        self.breaker_transitions.labels(name, old, new).inc()
        with self._lock:
            self._breaker_states[name] = new

    # -- scrape-time snapshots ----------------------------------------------------------------
    def set_breaker_state(self, name: str, state: Any) -> None:
        """Set a breaker's current state (``closed``, ``open`` or ``half_open``)."""
        with self._lock:
            self._breaker_states[name] = _state_name(state)

    def set_cache(
        self, name: str, stats: Any, *, on_fallback: bool = False, l1: L1Snapshot | None = None
    ) -> None:
        """Copy the counters of a ``CacheStats`` (or mapping) for cache ``name`` (and the state
        of its L1, for a tiered cache)."""
        counters: dict[str, float] = {}
        for f in CACHE_STAT_FIELDS:
            value = stats.get(f) if isinstance(stats, Mapping) else getattr(stats, f, None)
            if isinstance(value, int | float) and not isinstance(value, bool):
                counters[f] = float(value)
        with self._lock:
            self._caches[name] = CacheSnapshot(counters, on_fallback, l1)

    def set_queue(
        self,
        name: str,
        counts: Mapping[str, int],
        oldest_age: float | None,
        paused: bool | None = None,
    ) -> None:
        """Set the depth of queue ``name`` (and whether it is paused, when known)."""
        snap = QueueSnapshot({str(k): int(v) for k, v in counts.items()}, oldest_age, paused)
        with self._lock:
            self._queues[name] = snap

    def set_connection(
        self,
        name: str,
        transport: str,
        state: str,
        *,
        pool_in_use: int | None = None,
        latency: float | None = None,
    ) -> None:
        """Set the state of backend connection ``name``."""
        with self._lock:
            self._connections[name] = ConnectionSnapshot(transport, state, pool_in_use, latency)

    def set_outbox(self, stats: OutboxStats) -> None:
        """Set the enqueue outbox's depth, limits and counters."""
        with self._lock:
            self._outbox = stats

    def render(self) -> bytes:
        """The text exposition of every series."""
        return generate_latest(self.registry)


def _state_name(state: Any) -> str:
    """``CircuitState.HALF_OPEN`` / ``"half-open"`` / ``"half_open"`` -> ``"half_open"``."""
    value = getattr(state, "value", state)
    return str(value).lower().replace("-", "_")
