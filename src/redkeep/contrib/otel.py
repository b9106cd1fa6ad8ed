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
is configured (the global one set, or one given to ``instrument``), each instrumented call
only looks for one and runs as it would untraced: no span, no header.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

try:
    from opentelemetry import context, propagate, trace
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
        BaseInstrumentor,
    )
    from opentelemetry.trace import (
        INVALID_SPAN,
        Link,
        NoOpTracer,
        NoOpTracerProvider,
        ProxyTracerProvider,
        Span,
        SpanKind,
        Status,
        StatusCode,
        Tracer,
        TracerProvider,
    )
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        f"redkeep.contrib.otel needs OpenTelemetry ({exc}): pip install 'redkeep[otel]'"
    ) from exc
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from redkeep import __version__
from redkeep.cache.base import MISSING, CacheService
from redkeep.cache.fallback import FallbackCache
from redkeep.cache.memory import MemoryCache
from redkeep.cache.redis import RedisCache
from redkeep.cache.tiered import TieredCache
from redkeep.queue import worker as worker_module
from redkeep.queue.base import JobQueue
from redkeep.queue.job import Job, JobFailure, JobSpec
from redkeep.queue.protocol import Outcome
from redkeep.web import app as web_app
from redkeep.web.middleware import UNMATCHED, route_label

__all__ = ["DEFAULT_EXCLUDED_PATHS", "SCHEMA_URL", "SYSTEM", "RedkeepInstrumentor"]

log = logging.getLogger("redkeep.contrib.otel")

SYSTEM = "redkeep"
"""``messaging.system`` of queue spans."""
SCHEMA_URL = "https://opentelemetry.io/schemas/1.30.0"
"""The semantic conventions the attribute names follow."""
DEFAULT_EXCLUDED_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})
"""HTTP paths traced by no span by default: probes and scrapes, polled every few seconds."""
CACHE_OPERATIONS = (
    "get", "set", "add", "delete", "has", "get_many", "set_many", "delete_many", "incr", "ttl",
    "touch", "clear",
)  # fmt: skip
_BATCHES = frozenset({"get_many", "set_many", "delete_many"})
_BACKENDS = ((TieredCache, "tiered"), (FallbackCache, "fallback"), (RedisCache, "redis"),
             (MemoryCache, "memory"))  # fmt: skip
_in_cache_call: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "redkeep_otel_cache_call", default=False
)


class _Tracing:
    """Where spans come from: the provider given to ``instrument()``, else the global one once
    the application has set it (looked up on each call until then, then kept)."""

    def __init__(self, provider: TracerProvider | None, process_as_child: bool) -> None:
        self.provider = provider
        self.process_as_child = process_as_child
        self.enabled = True
        self._tracer: Tracer | None = None
        self._off = False

    def tracer(self) -> Tracer | None:
        """The tracer, or None while tracing is not configured (or switched off)."""
        tracer = self._tracer
        if tracer is not None:
            return tracer if self.enabled else None
        if self._off or not self.enabled:
            return None
        provider = self.provider or trace.get_tracer_provider()
        if isinstance(provider, ProxyTracerProvider):
            return None  # nothing configured yet: look again next time
        tracer = provider.get_tracer("redkeep", __version__, schema_url=SCHEMA_URL)
        if isinstance(provider, NoOpTracerProvider) or isinstance(tracer, NoOpTracer):
            self._off = True  # a provider cannot be replaced once set: never look again
            return None
        self._tracer = tracer
        return tracer


def _failed(span: Span, exc: BaseException) -> None:
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    span.record_exception(exc)
    span.set_attribute("error.type", name)
    span.set_status(Status(StatusCode.ERROR, f"{kind.__name__}: {exc}"))


def _with_context(ctx: context.Context, headers: Any) -> Any:
    """``headers`` with the propagation fields of ``ctx`` added (the caller's own win)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=ctx)
    if not carrier or (headers is not None and not isinstance(headers, Mapping)):
        return headers  # nothing to add, or headers enqueue will refuse with its own error
    if headers:
        carrier.update(headers)
    return carrier


# -- queue -------------------------------------------------------------------------------------
def _messaging(queue: str, operation: str, kind: str) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.destination.name": queue,
        "messaging.operation.name": operation,
        "messaging.operation.type": kind,
    }


def _wrap_enqueue(tracing: _Tracing, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def enqueue(self: JobQueue, name: str, payload: Any = None, **options: Any) -> Job:
        tracer = tracing.tracer()
        if tracer is None:
            return await original(self, name, payload, **options)  # type: ignore[no-any-return]
        attributes = _messaging(self.name, "enqueue", "send")
        attributes["redkeep.job.name"] = str(name)
        span = tracer.start_span(
            f"enqueue {self.name}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        ctx = trace.set_span_in_context(span)
        options["headers"] = _with_context(ctx, options.get("headers"))
        token = context.attach(ctx)
        try:
            job: Job = await original(self, name, payload, **options)
        except Exception as exc:
            _failed(span, exc)
            raise
        else:
            span.set_attribute("messaging.message.id", job.id)
            return job
        finally:
            context.detach(token)
            span.end()

    return enqueue


def _wrap_enqueue_many(tracing: _Tracing, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def enqueue_many(self: JobQueue, specs: Iterable[JobSpec]) -> list[Job]:
        tracer = tracing.tracer()
        if tracer is None:
            return await original(self, specs)  # type: ignore[no-any-return]
        specs = list(specs)
        attributes = _messaging(self.name, "enqueue", "send")
        attributes["messaging.batch.message_count"] = len(specs)
        span = tracer.start_span(
            f"enqueue {self.name}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        ctx = trace.set_span_in_context(span)
        specs = [replace(s, headers=_with_context(ctx, s.headers)) for s in specs]
        token = context.attach(ctx)
        try:
            return await original(self, specs)  # type: ignore[no-any-return]
        except Exception as exc:
            _failed(span, exc)
            raise
        finally:
            context.detach(token)
            span.end()

    return enqueue_many


def _wrap_execute(tracing: _Tracing, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def execute_job(queue: Any, job: Job, handlers: Any, executors: Any) -> Outcome:
        tracer = tracing.tracer()
        if tracer is None:
            return await original(queue, job, handlers, executors)  # type: ignore[no-any-return]
        found = propagate.extract(job.headers) if job.headers else context.Context()
        producer = trace.get_current_span(found).get_span_context()
        links = [Link(producer)] if producer.is_valid else None
        parent = found
        if not tracing.process_as_child:
            parent = trace.set_span_in_context(INVALID_SPAN, found)  # a new trace, same baggage
        attributes = _messaging(job.queue, "process", "process")
        attributes["messaging.message.id"] = job.id
        attributes["redkeep.job.name"] = job.name
        attributes["redkeep.job.attempt"] = job.attempts
        span = tracer.start_span(
            f"process {job.queue}", parent, SpanKind.CONSUMER, attributes, links
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        try:
            outcome: Outcome = await original(queue, job, handlers, executors)
        except asyncio.CancelledError:
            span.set_attribute("redkeep.job.outcome", "interrupted")  # cancelled, lost, stopped
            raise
        except Exception as exc:
            _failed(span, exc)
            raise
        else:
            _record_outcome(span, outcome)
            return outcome
        finally:
            context.detach(token)
            span.end()

    return execute_job


def _record_outcome(span: Span, outcome: Outcome) -> None:
    span.set_attribute("redkeep.job.outcome", outcome.kind)
    if outcome.kind not in ("retry", "fail"):
        return
    failure = JobFailure.from_json(outcome.data)
    span.add_event(
        "exception",
        {
            "exception.type": failure.type,
            "exception.message": failure.message,
            "exception.stacktrace": failure.traceback,
        },
    )
    span.set_attribute("error.type", failure.type)
    span.set_status(Status(StatusCode.ERROR, f"{failure.type}: {failure.message}"))


# -- cache -------------------------------------------------------------------------------------
def _backend(cls: type) -> str:
    for base, name in _BACKENDS:
        if issubclass(cls, base):
            return name
    return cls.__name__.lower()


def _wrap_cache(
    tracing: _Tracing, cls: type[CacheService], op: str, original: Callable[..., Any]
) -> Callable[..., Any]:
    backend = _backend(cls)
    system = "memory" if backend == "memory" else "redis"
    fallback = issubclass(cls, FallbackCache)

    def start(tracer: Tracer, cache: CacheService, args: tuple[Any, ...]) -> Span:
        attributes: dict[str, Any] = {
            "db.system.name": system,
            "db.operation.name": op,
            "db.collection.name": cache.name,
            "redkeep.cache.backend": backend,
        }
        if op in _BATCHES and args and isinstance(args[0], Collection):
            attributes["db.operation.batch.size"] = len(args[0])
        return tracer.start_span(f"{op} {cache.name}", kind=SpanKind.CLIENT, attributes=attributes)

    def finish(cache: CacheService, span: Span) -> None:
        if fallback and cache.mode == "fallback":  # type: ignore[attr-defined]
            span.set_attribute("redkeep.cache.fallback", True)
        span.end()

    async def traced(self: CacheService, *args: Any, **kwargs: Any) -> Any:
        tracer = tracing.tracer()
        if tracer is None or _in_cache_call.get():
            return await original(self, *args, **kwargs)
        span = start(tracer, self, args)
        inner = _in_cache_call.set(True)
        token = context.attach(trace.set_span_in_context(span))
        try:
            result = await original(self, *args, **kwargs)
            if op == "get_many":
                span.set_attribute("db.response.returned_rows", len(result))
            return result
        except Exception as exc:
            _failed(span, exc)
            raise
        finally:
            context.detach(token)
            _in_cache_call.reset(inner)
            finish(self, span)

    async def traced_get(self: CacheService, key: str, default: Any = None) -> Any:
        tracer = tracing.tracer()
        if tracer is None or _in_cache_call.get():
            return await original(self, key, default)
        span = start(tracer, self, ())
        inner = _in_cache_call.set(True)
        token = context.attach(trace.set_span_in_context(span))
        try:
            value = await original(self, key, MISSING)  # MISSING tells a miss from a None
            span.set_attribute("redkeep.cache.hit", value is not MISSING)
            return default if value is MISSING else value
        except Exception as exc:
            _failed(span, exc)
            raise
        finally:
            context.detach(token)
            _in_cache_call.reset(inner)
            finish(self, span)

    return functools.wraps(original)(traced_get if op == "get" else traced)


def _cache_classes() -> list[type[CacheService]]:
    """Every concrete cache class (subclasses of subclasses too) known now."""
    found: list[type[CacheService]] = []
    todo: list[type] = [CacheService]
    while todo:
        sub: type[CacheService]
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                todo.append(sub)
    return found


# -- HTTP --------------------------------------------------------------------------------------
class _HttpTracing:
    """ASGI middleware: the ASGI instrumentation's SERVER spans, named by route template, for
    requests outside ``excluded`` while tracing is configured; straight to the app otherwise.

    The instrumentation's middleware is this one's ``app``, where FastAPI's own telemetry
    (FastAPI >= 0.16x) looks for it and then makes no second span of the request."""

    def __init__(
        self,
        app: ASGIApp,
        traced: Callable[..., ASGIApp],
        tracing: _Tracing,
        routes: Sequence[BaseRoute],
        excluded: Collection[str],
    ) -> None:
        self.inner = app
        self.tracing = tracing
        self.routes = routes
        self.excluded = excluded
        self.app = traced(app, default_span_details=self._details)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("path") in self.excluded
            or self.tracing.tracer() is None
        ):
            await self.inner(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _details(self, scope: Scope) -> tuple[str, dict[str, str]]:
        method = str(scope.get("method", "HTTP"))
        route = route_label(self.routes, scope)
        if route == UNMATCHED:
            return method, {}
        return f"{method} {route}", {"http.route": route}


# -- instrumentor ------------------------------------------------------------------------------
class RedkeepInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Traces redkeep's queues, workers, caches and HTTP API (a singleton, as every
    OpenTelemetry instrumentor).

    ``instrument(tracer_provider=None, process_as_child=True,
    http_excluded_paths=DEFAULT_EXCLUDED_PATHS)``: without a provider, spans go to the global
    one once the application sets it. Apps that :func:`~redkeep.web.app.create_app` builds
    afterwards get HTTP spans. ``uninstrument()`` restores everything (apps built meanwhile
    keep a pass-through middleware).
    """

    _tracing: _Tracing | None = None
    _patched: list[tuple[Any, str, Any]] = []

    def instrumentation_dependencies(self) -> Collection[str]:
        """Nothing to check: this instrumentor ships with the library it instruments."""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        tracing = _Tracing(kwargs.get("tracer_provider"), kwargs.get("process_as_child", True))
        excluded = frozenset(kwargs.get("http_excluded_paths", DEFAULT_EXCLUDED_PATHS))
        self._tracing = tracing
        self._patched = []
        self._patch(JobQueue, "enqueue", _wrap_enqueue(tracing, JobQueue.enqueue))
        self._patch(JobQueue, "enqueue_many", _wrap_enqueue_many(tracing, JobQueue.enqueue_many))
        self._patch(
            worker_module,
            "execute_job",
            _wrap_execute(tracing, worker_module.__dict__["execute_job"]),
        )
        for cls in _cache_classes():
            for op in CACHE_OPERATIONS:
                original = cls.__dict__.get(op)
                if original is not None:
                    self._patch(cls, op, _wrap_cache(tracing, cls, op, original))

        def hook(app: Any, routes: Sequence[BaseRoute]) -> None:
            if getattr(app, "_is_instrumented_by_opentelemetry", False):
                return  # the FastAPI instrumentation traces this app already
            try:
                from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
            except ImportError:
                log.warning("HTTP requests are not traced: opentelemetry-instrumentation-asgi "
                            "is missing (pip install 'redkeep[otel]')")  # fmt: skip
                return
            app.add_middleware(
                _HttpTracing,
                traced=functools.partial(
                    OpenTelemetryMiddleware,
                    tracer_provider=tracing.provider,
                    exclude_spans=["receive", "send"],
                ),
                tracing=tracing,
                routes=routes,
                excluded=excluded,
            )

        self._patch(web_app, "APP_HOOKS", [*web_app.APP_HOOKS, hook])

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
