"""Fixtures of the contrib tests: ``traced`` instruments redkeep with the OpenTelemetry SDK's
in-memory exporter (its own tracer provider: the global one is never set in this process)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


class Traced:
    """The exporter, the provider and a tracer of an instrumented test."""

    def __init__(self, exporter: Any, provider: Any) -> None:
        self.exporter = exporter
        self.provider = provider
        self.tracer = provider.get_tracer("tests")

    def spans(self, name: str | None = None, kind: Any = None) -> list[Any]:
        """Finished spans, in the order they ended, with ``name`` / of ``kind`` if given."""
        return [
            s
            for s in self.exporter.get_finished_spans()
            if (name is None or s.name == name) and (kind is None or s.kind == kind)
        ]

    def one(self, name: str, kind: Any = None) -> Any:
        found = self.spans(name, kind)
        assert len(found) == 1, [s.name for s in self.exporter.get_finished_spans()]
        return found[0]


@pytest.fixture
def traced() -> Iterator[Traced]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from redkeep.contrib.otel import RedkeepInstrumentor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    RedkeepInstrumentor().instrument(tracer_provider=provider)
    try:
        yield Traced(exporter, provider)
    finally:
        RedkeepInstrumentor().uninstrument()
        provider.shutdown()


def traceparent(span: Any) -> str:
    """The W3C traceparent of ``span``."""
    ctx = span.get_span_context() if hasattr(span, "get_span_context") else span.context
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
