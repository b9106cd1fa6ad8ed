"""Spans of the job queue: ``enqueue <queue>`` (PRODUCER) and ``process <queue>`` (CONSUMER).

Each wrapper is a plain function: untraced, it returns the original coroutine itself, so an
instrumented but unconfigured process adds no coroutine frame to the call.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import INVALID_SPAN, Link, Span, SpanKind, Status, StatusCode, Tracer

from redkeep.contrib.otel._tracing import Tracing, carrier, failed, with_fields
from redkeep.queue.base import JobQueue
from redkeep.queue.job import Job, JobFailure, JobSpec
from redkeep.queue.protocol import Outcome

__all__ = ["SYSTEM", "wrap_enqueue", "wrap_enqueue_many", "wrap_execute"]

SYSTEM = "redkeep"
"""``messaging.system`` of queue spans."""


def _messaging(queue: str, operation: str, kind: str) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.destination.name": queue,
        "messaging.operation.name": operation,
        "messaging.operation.type": kind,
    }


def wrap_enqueue(tracing: Tracing, original: Callable[..., Any]) -> Callable[..., Any]:
    """:meth:`JobQueue.enqueue` in a PRODUCER span whose context goes into the job's headers."""

    async def traced(
        tracer: Tracer, queue: JobQueue, name: str, payload: Any, options: dict[str, Any]
    ) -> Job:
        attributes = _messaging(queue.name, "enqueue", "send")
        attributes["redkeep.job.name"] = str(name)
        span = tracer.start_span(f"enqueue {queue.name}", None, SpanKind.PRODUCER, attributes)
        ctx = trace.set_span_in_context(span)
        options["headers"] = with_fields(carrier(ctx), options.get("headers"))
        token = context.attach(ctx)
        try:
            job: Job = await original(queue, name, payload, **options)
        except Exception as exc:
            failed(span, exc)
            raise
        else:
            span.set_attribute("messaging.message.id", job.id)
            return job
        finally:
            context.detach(token)
            span.end()

    @functools.wraps(original)
    def enqueue(self: JobQueue, name: str, payload: Any = None, **options: Any) -> Awaitable[Job]:
        tracer = tracing.tracer()
        if tracer is None:
            return original(self, name, payload, **options)  # type: ignore[no-any-return]
        return traced(tracer, self, name, payload, options)

    return enqueue


def wrap_enqueue_many(tracing: Tracing, original: Callable[..., Any]) -> Callable[..., Any]:
    """:meth:`JobQueue.enqueue_many` in one PRODUCER span whose context every job carries."""

    async def traced(tracer: Tracer, queue: JobQueue, specs: Iterable[JobSpec]) -> list[Job]:
        specs = list(specs)
        attributes = _messaging(queue.name, "enqueue", "send")
        attributes["messaging.batch.message_count"] = len(specs)
        span = tracer.start_span(f"enqueue {queue.name}", None, SpanKind.PRODUCER, attributes)
        ctx = trace.set_span_in_context(span)
        fields = carrier(ctx)
        if fields:
            specs = [replace(s, headers=with_fields(fields, s.headers)) for s in specs]
        token = context.attach(ctx)
        try:
            return await original(queue, specs)  # type: ignore[no-any-return]
        except Exception as exc:
            failed(span, exc)
            raise
        finally:
            context.detach(token)
            span.end()

    @functools.wraps(original)
    def enqueue_many(self: JobQueue, specs: Iterable[JobSpec]) -> Awaitable[list[Job]]:
        tracer = tracing.tracer()
        if tracer is None:
            return original(self, specs)  # type: ignore[no-any-return]
        return traced(tracer, self, specs)

    return enqueue_many


def wrap_execute(tracing: Tracing, original: Callable[..., Any]) -> Callable[..., Any]:
    """The worker's ``execute_job`` in a CONSUMER span continuing the job's enqueue: a child of
    it (unless ``process_as_child`` is off) and linked to it, current while the handler runs."""

    async def traced(tracer: Tracer, job: Job, args: tuple[Any, ...]) -> Outcome:
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
        span = tracer.start_span(f"process {job.queue}", parent, SpanKind.CONSUMER, attributes,
                                 links)  # fmt: skip
        token = context.attach(trace.set_span_in_context(span, parent))
        try:
            outcome: Outcome = await original(*args)
        except asyncio.CancelledError:
            span.set_attribute("redkeep.job.outcome", "interrupted")  # cancelled, lost, stopped
            raise
        except Exception as exc:
            failed(span, exc)
            raise
        else:
            _record_outcome(span, outcome)
            return outcome
        finally:
            context.detach(token)
            span.end()

    @functools.wraps(original)
    def execute_job(queue: Any, job: Job, handlers: Any, executors: Any) -> Awaitable[Outcome]:
        tracer = tracing.tracer()
        if tracer is None:
            return original(queue, job, handlers, executors)  # type: ignore[no-any-return]
        return traced(tracer, job, (queue, job, handlers, executors))

    return execute_job


def _record_outcome(span: Span, outcome: Outcome) -> None:
    """How the attempt ended; a failure as the job recorded it (scrubbed of secrets)."""
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
