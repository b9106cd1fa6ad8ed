"""Spans of cache calls: ``<operation> <cache>`` (CLIENT), one per call of the outermost cache.

A fallback or tiered cache calls the caches below it; a context variable marks the call in
progress, so only the outermost makes a span. Keys and values are never recorded.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Tracer

from redkeep.cache.base import MISSING, CacheService
from redkeep.cache.fallback import FallbackCache
from redkeep.cache.memory import MemoryCache
from redkeep.cache.redis import RedisCache
from redkeep.cache.tiered import TieredCache
from redkeep.contrib.otel._tracing import Tracing, failed

__all__ = ["CACHE_OPERATIONS", "cache_classes", "wrap_cache"]

CACHE_OPERATIONS = (
    "get", "set", "add", "delete", "has", "get_many", "set_many", "delete_many", "incr", "ttl",
    "touch", "clear",
)  # fmt: skip
"""The cache methods that make a span."""
_BATCHES = frozenset({"get_many", "set_many", "delete_many"})
_BACKENDS = ((TieredCache, "tiered"), (FallbackCache, "fallback"), (RedisCache, "redis"),
             (MemoryCache, "memory"))  # fmt: skip
_in_call: contextvars.ContextVar[bool] = contextvars.ContextVar("redkeep_otel_cache_call",
                                                                default=False)  # fmt: skip


def cache_classes() -> list[type[CacheService]]:
    """Every cache class (subclasses of subclasses too) defined now."""
    found: list[type[CacheService]] = []
    todo: list[type] = [CacheService]
    while todo:
        sub: type[CacheService]
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                todo.append(sub)
    return found


def _backend(cls: type) -> str:
    for base, name in _BACKENDS:
        if issubclass(cls, base):
            return name
    return cls.__name__.lower()


def wrap_cache(
    tracing: Tracing, cls: type[CacheService], op: str, original: Callable[..., Any]
) -> Callable[..., Any]:
    """``cls.<op>`` (``original``) in a CLIENT span when it is the outermost cache call."""
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
        return tracer.start_span(f"{op} {cache.name}", None, SpanKind.CLIENT, attributes)

    async def run(
        span: Span,
        cache: CacheService,
        call: Callable[[], Awaitable[Any]],
        seen: Callable[[Any], None] | None = None,
    ) -> Any:
        inner = _in_call.set(True)
        token = context.attach(trace.set_span_in_context(span))
        try:
            result = await call()
            if seen is not None:
                seen(result)
            return result
        except Exception as exc:
            failed(span, exc)
            raise
        finally:
            context.detach(token)
            _in_call.reset(inner)
            if fallback and cache.mode == "fallback":  # type: ignore[attr-defined]
                span.set_attribute("redkeep.cache.fallback", True)
            span.end()

    async def get(span: Span, cache: CacheService, key: str, default: Any) -> Any:
        def seen(value: Any) -> None:
            span.set_attribute("redkeep.cache.hit", value is not MISSING)  # a stored None hits

        value = await run(span, cache, lambda: original(cache, key, MISSING), seen)
        return default if value is MISSING else value

    def rows(span: Span) -> Callable[[Any], None]:
        return lambda found: span.set_attribute("db.response.returned_rows", len(found))

    def traced_get(self: CacheService, key: str, default: Any = None) -> Awaitable[Any]:
        tracer = tracing.tracer()
        if tracer is None or _in_call.get():
            return original(self, key, default)  # type: ignore[no-any-return]
        return get(start(tracer, self, ()), self, key, default)

    def traced(self: CacheService, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        tracer = tracing.tracer()
        if tracer is None or _in_call.get():
            return original(self, *args, **kwargs)  # type: ignore[no-any-return]
        span = start(tracer, self, args)
        seen = rows(span) if op == "get_many" else None
        return run(span, self, lambda: original(self, *args, **kwargs), seen)

    return functools.wraps(original)(traced_get if op == "get" else traced)
