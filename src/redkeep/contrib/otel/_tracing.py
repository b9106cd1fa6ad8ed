"""Where redkeep's spans come from, and what every traced call shares."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import (
    NoOpTracer,
    NoOpTracerProvider,
    ProxyTracerProvider,
    Span,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
)

from redkeep import __version__

__all__ = ["LOOK_INTERVAL", "SCHEMA_URL", "Tracing", "carrier", "failed", "with_fields"]

SCHEMA_URL = "https://opentelemetry.io/schemas/1.30.0"
"""The semantic conventions the attribute names follow."""
LOOK_INTERVAL = 0.05
"""Seconds between two looks for a global tracer provider while none is set."""


class Tracing:
    """The tracer of the provider given to ``instrument()``, else of the global one once the
    application has set it.

    While no provider is set, :meth:`tracer` looks for one at most every
    :data:`LOOK_INTERVAL` seconds (the API's look costs about a microsecond: it reads the
    environment), so an instrumented but unconfigured process pays a clock read per call.
    """

    def __init__(self, provider: TracerProvider | None, process_as_child: bool) -> None:
        self.provider = provider
        self.process_as_child = process_as_child
        self.enabled = True
        self._tracer: Tracer | None = None
        self._off = False
        self._next_look = 0.0

    def tracer(self) -> Tracer | None:
        """The tracer, or None while tracing is not configured (or switched off)."""
        tracer = self._tracer
        if tracer is not None:
            return tracer if self.enabled else None
        if self._off or not self.enabled:
            return None
        now = time.monotonic()
        if now < self._next_look:
            return None
        provider = self.provider or trace.get_tracer_provider()
        if isinstance(provider, ProxyTracerProvider):
            self._next_look = now + LOOK_INTERVAL  # nothing configured yet
            return None
        tracer = provider.get_tracer("redkeep", __version__, schema_url=SCHEMA_URL)
        if isinstance(provider, NoOpTracerProvider) or isinstance(tracer, NoOpTracer):
            self._off = True  # a global provider cannot be replaced once set: never look again
            return None
        self._tracer = tracer
        return tracer


def failed(span: Span, exc: BaseException) -> None:
    """Record ``exc`` on ``span``: an exception event, ``error.type``, status ERROR."""
    kind = type(exc)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    span.record_exception(exc)
    span.set_attribute("error.type", name)
    span.set_status(Status(StatusCode.ERROR, f"{kind.__name__}: {exc}"))


def carrier(ctx: context.Context) -> dict[str, str]:
    """The propagation fields of ``ctx`` (the global propagator's: W3C ``traceparent`` and,
    when there is any, ``baggage`` by default); empty for a context without a valid span."""
    fields: dict[str, str] = {}
    propagate.inject(fields, context=ctx)
    return fields


def with_fields(fields: dict[str, str], headers: Any) -> Any:
    """Job ``headers`` with ``fields`` added (the caller's own headers win)."""
    if not fields or (headers is not None and not isinstance(headers, Mapping)):
        return headers  # nothing to add, or headers the enqueue refuses with its own error
    return {**fields, **headers} if headers else fields
