"""A traced worker process: the OpenTelemetry SDK with its in-memory exporter, redkeep
instrumented, a worker on one Redis queue.

Usage: ``python otel_worker.py URL KEY_PREFIX QUEUE COUNT OUT``. Handler ``work`` returns
``"ok"``, or raises ``ValueError(payload["fail"])`` when the payload says so. Once ``COUNT``
consumer spans have ended (or after 30 s) the worker stops and every finished span is written
to ``OUT`` as a JSON list (the SDK's ``ReadableSpan.to_json()``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from redkeep.contrib.otel import RedkeepInstrumentor
from redkeep.queue import Job, RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient


def work(job: Job) -> str:
    if job.payload.get("fail"):
        raise ValueError(job.payload["fail"])
    return "ok"


async def main() -> None:
    url, prefix, queue, count, out = sys.argv[1:6]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    RedkeepInstrumentor().instrument(tracer_provider=provider)
    client = MuxClient(url)
    worker = Worker(RedisJobQueue(client, queue, key_prefix=prefix), {"work": work},
                    handle_signals=False)  # fmt: skip
    task = asyncio.create_task(worker.run())

    def consumed() -> int:
        return sum(s.kind == SpanKind.CONSUMER for s in exporter.get_finished_spans())

    deadline = time.monotonic() + 30
    while consumed() < int(count) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    worker.stop()
    await task
    await client.close()
    spans: list[Any] = [json.loads(s.to_json()) for s in exporter.get_finished_spans()]
    with open(out, "w") as f:
        json.dump(spans, f)


if __name__ == "__main__":
    asyncio.run(main())
