"""OpenTelemetry tracing (``pip install 'redkeep[otel]'``): spans for enqueues, job attempts,
cache calls and the HTTP API. See docs/otel.md.

    from redkeep.contrib.otel import RedkeepInstrumentor

    RedkeepInstrumentor().instrument()  # before create_app() builds an app

or run a redkeep process under ``opentelemetry-instrument``, which finds this instrumentor by
its ``opentelemetry_instrumentor`` entry point. Spans:

- ``enqueue <queue>`` (PRODUCER) around :meth:`JobQueue.enqueue
  <redkeep.queue.base.JobQueue.enqueue>` and ``enqueue_many``. Its context goes into each job's
  headers through the global propagator (W3C ``traceparent`` by default); a ``traceparent``
  the caller passes in ``headers`` is kept.
- ``process <queue>`` (CONSUMER) around each attempt a worker runs: a child of the enqueue
  span and linked to it (``process_as_child=False``: a new trace, linked only). A failed
  attempt sets the status to ERROR and records the job's (scrubbed) failure as an exception
  event. The handler runs with this span current, threads and async handlers alike.
- ``<operation> <cache>`` (CLIENT) around each call of a cache's API (get, set, delete, their
  many-variants, add, has, incr, ttl, touch, clear); only the outermost cache of a stack (a
  tiered or fallback cache over a Redis one) makes a span. Keys and values are never recorded.
- HTTP requests to :func:`~redkeep.web.app.create_app` apps (SERVER), from the ASGI
  instrumentation, named by route template (``POST /v1/queues/{queue}/jobs``); the probes
  and ``/metrics`` are left out unless ``http_excluded_paths`` says otherwise.

Cost: nothing is patched before :meth:`RedkeepInstrumentor.instrument`. Until a tracer provider
is configured (the global one set, or one given to ``instrument``), an instrumented call runs
as it would untraced (no span, no header, no extra coroutine), after a look for the global
provider at most every :data:`LOOK_INTERVAL` seconds; spans start within that interval of the
application setting it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

try:
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
        BaseInstrumentor,
    )

    from redkeep.contrib.otel._cache import CACHE_OPERATIONS, cache_classes, wrap_cache
    from redkeep.contrib.otel._queue import SYSTEM, wrap_enqueue, wrap_enqueue_many, wrap_execute
    from redkeep.contrib.otel._tracing import LOOK_INTERVAL, SCHEMA_URL, Tracing
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        f"redkeep.contrib.otel needs OpenTelemetry ({exc}): pip install 'redkeep[otel]'"
    ) from exc

from redkeep.queue import worker as worker_module
from redkeep.queue.base import JobQueue

__all__ = [
    "CACHE_OPERATIONS",
    "DEFAULT_EXCLUDED_PATHS",
    "LOOK_INTERVAL",
    "SCHEMA_URL",
    "SYSTEM",
    "RedkeepInstrumentor",
]

DEFAULT_EXCLUDED_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})
"""HTTP paths traced by no span by default: probes and scrapes, polled every few seconds."""


class RedkeepInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Traces redkeep's queues, workers, caches and HTTP API (a singleton, as every
    OpenTelemetry instrumentor).

    ``instrument(tracer_provider=None, process_as_child=True,
    http_excluded_paths=DEFAULT_EXCLUDED_PATHS)``: without a provider, spans go to the global
    one once the application sets it. Apps that :func:`~redkeep.web.app.create_app` builds
    afterwards get HTTP spans. ``uninstrument()`` restores everything (apps built meanwhile
    keep a pass-through middleware).
    """

    _tracing: Tracing | None = None
    _patched: list[tuple[Any, str, Any]] = []

    def instrumentation_dependencies(self) -> Collection[str]:
        """Nothing to check: this instrumentor ships with the library it instruments."""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        tracing = Tracing(kwargs.get("tracer_provider"), kwargs.get("process_as_child", True))
        excluded = frozenset(kwargs.get("http_excluded_paths", DEFAULT_EXCLUDED_PATHS))
        self._tracing = tracing
        self._patched = []
        self._patch(JobQueue, "enqueue", wrap_enqueue(tracing, JobQueue.enqueue))
        self._patch(JobQueue, "enqueue_many", wrap_enqueue_many(tracing, JobQueue.enqueue_many))
        execute = worker_module.__dict__["execute_job"]
        self._patch(worker_module, "execute_job", wrap_execute(tracing, execute))
        for cls in cache_classes():
            for op in CACHE_OPERATIONS:
                original = cls.__dict__.get(op)
                if original is not None:
                    self._patch(cls, op, wrap_cache(tracing, cls, op, original))
        try:
            from redkeep.contrib.otel._http import app_hook
            from redkeep.web import app as web_app
        except ImportError:  # no HTTP server here (redkeep[server]): nothing else to trace
            return
        self._patch(web_app, "APP_HOOKS", [*web_app.APP_HOOKS, app_hook(tracing, excluded)])

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        self._patched.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, value)

    def _uninstrument(self, **kwargs: Any) -> None:
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)
        self._patched = []
        if self._tracing is not None:
            self._tracing.enabled = False
            self._tracing = None
