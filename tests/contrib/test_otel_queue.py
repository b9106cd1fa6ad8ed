"""OpenTelemetry spans of the job queue (redkeep.contrib.otel): enqueue (PRODUCER), each
attempt (CONSUMER) as a child of the enqueue and linked to it, through the job's headers, in
one process and across a worker process, on memory and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from redkeep.config import Settings
from redkeep.queue import Job, JobQueue, JobSpec, MemoryJobQueue, RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient
from redkeep.sync import SyncServices
from tests.contrib.conftest import Traced, traceparent

WORKER = Path(__file__).with_name("otel_worker.py")


@pytest.fixture(params=["memory", "redis"])
async def queue(request: pytest.FixtureRequest, redis_url: str, prefix: str) -> AsyncIterator[Any]:
    name = f"otel-{uuid.uuid4().hex[:8]}"
    if request.param == "memory":
        yield MemoryJobQueue(name)
        return
    client = MuxClient(redis_url)
    try:
        yield RedisJobQueue(client, name, key_prefix=prefix)
    finally:
        await client.close()


async def run_until_done(queue: JobQueue, handlers: dict[str, Any], jobs: list[Job]) -> None:
    """Run a worker until every job in ``jobs`` is finished."""
    worker = Worker(queue, handlers, handle_signals=False, concurrency=4)
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(500):
            found = [await queue.get_job(j.id) for j in jobs]
            if all(j is not None and j.finished for j in found):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("jobs did not finish")
    finally:
        worker.stop()
        await task


async def test_a_job_run_is_a_child_of_its_enqueue_and_linked_to_it(
    traced: Traced, queue: JobQueue
) -> None:
    inner: dict[str, Any] = {}

    async def async_handler(job: Job) -> str:
        with traced.tracer.start_as_current_span("charge card") as span:
            inner["async"] = span
        return "ok"

    def sync_handler(job: Job) -> str:  # runs in a thread of the worker
        with traced.tracer.start_as_current_span("render pdf") as span:
            inner["sync"] = span
        return "ok"

    job = await queue.enqueue("pay", {"amount": 3})
    other = await queue.enqueue("render")
    enqueue = traced.spans(f"enqueue {queue.name}", SpanKind.PRODUCER)
    assert len(enqueue) == 2
    producer = enqueue[0]
    assert dict(producer.attributes) == {
        "messaging.system": "redkeep",
        "messaging.destination.name": queue.name,
        "messaging.operation.name": "enqueue",
        "messaging.operation.type": "send",
        "messaging.message.id": job.id,
        "redkeep.job.name": "pay",
    }
    assert job.headers == {"traceparent": traceparent(producer)}
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.headers == job.headers

    await run_until_done(queue, {"pay": async_handler, "render": sync_handler}, [job, other])
    consumers = traced.spans(f"process {queue.name}", SpanKind.CONSUMER)
    by_job = {s.attributes["messaging.message.id"]: s for s in consumers}
    assert set(by_job) == {job.id, other.id}
    consumer = by_job[job.id]
    assert consumer.parent.span_id == producer.context.span_id
    assert consumer.context.trace_id == producer.context.trace_id
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]
    assert consumer.attributes["messaging.operation.type"] == "process"
    assert consumer.attributes["redkeep.job.name"] == "pay"
    assert consumer.attributes["redkeep.job.attempt"] == 1
    assert consumer.attributes["redkeep.job.outcome"] == "done"
    assert consumer.status.status_code == StatusCode.UNSET
    # The handlers' own spans are children of their attempt's span, async and threaded alike.
    assert inner["async"].parent.span_id == consumer.context.span_id
    assert inner["sync"].parent.span_id == by_job[other.id].context.span_id


async def test_failed_attempts_set_the_error_status_and_record_the_failure(
    traced: Traced, queue: JobQueue
) -> None:
    def refuse(job: Job) -> None:
        raise ValueError("card declined for redis://app:s3cret@db.internal:6379")

    job = await queue.enqueue("refuse", max_attempts=2, backoff=0)
    await run_until_done(queue, {"refuse": refuse}, [job])
    attempts = traced.spans(f"process {queue.name}", SpanKind.CONSUMER)
    assert [s.attributes["redkeep.job.attempt"] for s in attempts] == [1, 2]
    assert [s.attributes["redkeep.job.outcome"] for s in attempts] == ["retry", "fail"]
    for span in attempts:
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description.startswith("ValueError: card declined")
        assert span.attributes["error.type"] == "ValueError"
        [event] = span.events
        assert event.name == "exception"
        assert event.attributes["exception.type"] == "ValueError"
        assert "card declined" in event.attributes["exception.message"]
        assert 'raise ValueError("card declined' in event.attributes["exception.stacktrace"]
        # The recorded failure is the job's scrubbed one: no password reaches the exporter.
        assert "s3cret" not in json.dumps(dict(event.attributes)) + span.status.description


async def test_enqueue_many_is_one_span_whose_context_every_job_carries(
    traced: Traced, queue: JobQueue
) -> None:
    jobs = await queue.enqueue_many([JobSpec("noop", i) for i in range(5)])
    producer = traced.one(f"enqueue {queue.name}", SpanKind.PRODUCER)
    assert producer.attributes["messaging.batch.message_count"] == 5
    assert "messaging.message.id" not in producer.attributes
    assert {j.headers["traceparent"] for j in jobs} == {traceparent(producer)}
    await run_until_done(queue, {"noop": lambda job: None}, jobs)
    consumers = traced.spans(f"process {queue.name}", SpanKind.CONSUMER)
    assert len(consumers) == 5
    assert {s.parent.span_id for s in consumers} == {producer.context.span_id}


async def test_an_enqueue_inside_a_span_is_its_child_and_a_callers_header_is_kept(
    traced: Traced, queue: JobQueue
) -> None:
    with traced.tracer.start_as_current_span("handle request") as request:
        job = await queue.enqueue("x", headers={"tenant": "acme"})
    producer = traced.one(f"enqueue {queue.name}", SpanKind.PRODUCER)
    assert producer.parent.span_id == request.get_span_context().span_id
    assert job.headers == {"traceparent": traceparent(producer), "tenant": "acme"}
    mine = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    kept = await queue.enqueue("x", headers={"traceparent": mine})
    assert kept.headers == {"traceparent": mine}


async def test_process_as_child_false_starts_a_new_trace_linked_to_the_enqueue(
    traced: Traced, queue: JobQueue
) -> None:
    from redkeep.contrib.otel import RedkeepInstrumentor

    RedkeepInstrumentor().uninstrument()
    RedkeepInstrumentor().instrument(tracer_provider=traced.provider, process_as_child=False)
    job = await queue.enqueue("x")
    await run_until_done(queue, {"x": lambda job: None}, [job])
    producer = traced.one(f"enqueue {queue.name}", SpanKind.PRODUCER)
    consumer = traced.one(f"process {queue.name}", SpanKind.CONSUMER)
    assert consumer.parent is None
    assert consumer.context.trace_id != producer.context.trace_id
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]


async def test_a_job_without_trace_context_is_processed_in_a_trace_of_its_own(
    traced: Traced, queue: JobQueue
) -> None:
    """A job enqueued by an untraced producer (another service, a 0.1 process) still gets its
    consumer span, a root without links."""
    from redkeep.contrib.otel import RedkeepInstrumentor

    RedkeepInstrumentor().uninstrument()
    job = await queue.enqueue("x")
    assert job.headers == {}
    RedkeepInstrumentor().instrument(tracer_provider=traced.provider)
    await run_until_done(queue, {"x": lambda job: None}, [job])
    consumer = traced.one(f"process {queue.name}", SpanKind.CONSUMER)
    assert consumer.parent is None and not consumer.links


async def test_a_worker_process_continues_the_trace_of_an_enqueue_made_here(
    traced: Traced, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    client = MuxClient(redis_url)
    queue = RedisJobQueue(client, "otel-proc", key_prefix=prefix)
    try:
        ok = await queue.enqueue("work", {})
        bad = await queue.enqueue("work", {"fail": "no stock"}, max_attempts=1)
    finally:
        await client.close()
    producers = {s.attributes["messaging.message.id"]: s for s in traced.spans("enqueue otel-proc")}
    out = tmp_path / "spans.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), redis_url, prefix, "otel-proc", "2", str(out),
        stderr=subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    spans = json.loads(out.read_text())
    consumers = {s["attributes"]["messaging.message.id"]: s for s in spans
                 if s["kind"] == "SpanKind.CONSUMER"}  # fmt: skip
    assert set(consumers) == {ok.id, bad.id}
    for job in (ok, bad):
        producer, consumer = producers[job.id], consumers[job.id]
        assert consumer["name"] == "process otel-proc"
        assert consumer["context"]["trace_id"] == f"0x{producer.context.trace_id:032x}"
        assert consumer["parent_id"] == f"0x{producer.context.span_id:016x}"
        assert [link["context"]["span_id"] for link in consumer["links"]] == [
            f"0x{producer.context.span_id:016x}"
        ]
    assert consumers[ok.id]["status"]["status_code"] == "UNSET"
    failed = consumers[bad.id]
    assert failed["status"]["status_code"] == "ERROR"
    assert failed["attributes"]["error.type"] == "ValueError"
    assert [e["name"] for e in failed["events"]] == ["exception"]
    assert failed["events"][0]["attributes"]["exception.message"] == "no stock"


def test_a_blocking_enqueue_is_a_child_of_the_callers_span(traced: Traced) -> None:
    """redkeep.sync runs the enqueue on its event loop with the calling thread's context."""
    with SyncServices(Settings(backend="memory")) as services:
        queue = services.queue("sync-otel")
        results: list[Any] = []

        def call() -> None:
            with traced.tracer.start_as_current_span("view") as view:
                results.append((view, queue.enqueue("x")))

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    producers = traced.spans("enqueue sync-otel", SpanKind.PRODUCER)
    assert len(producers) == 4
    parents = {p.parent.span_id: p for p in producers}
    for view, job in results:
        producer = parents[view.get_span_context().span_id]
        assert job.headers["traceparent"] == traceparent(producer)


ZERO_CODE = """
import asyncio
from redkeep.queue import MemoryJobQueue, Worker

async def main():
    queue = MemoryJobQueue("zero")
    job = await queue.enqueue("x", 1)
    worker = Worker(queue, {"x": lambda job: job.payload}, handle_signals=False)
    task = asyncio.create_task(worker.run())
    while not (await queue.get_job(job.id)).finished:
        await asyncio.sleep(0.01)
    worker.stop()
    await task

asyncio.run(main())
"""


def test_opentelemetry_instrument_traces_a_process_without_code(tmp_path: Path) -> None:
    """``opentelemetry-instrument`` finds the instrumentor by its entry point and the SDK is
    configured from ``OTEL_*`` variables: no line of tracing code in the program."""
    script = tmp_path / "app.py"
    script.write_text(ZERO_CODE)
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "zero-code",
    }
    tool = Path(sys.executable).with_name("opentelemetry-instrument")
    done = subprocess.run([str(tool), sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    spans, text, decoder = [], done.stdout, json.JSONDecoder()
    while text.strip():
        span, end = decoder.raw_decode(text.strip())
        spans.append(span)
        text = text.strip()[end:]
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"enqueue zero", "process zero"}
    assert by_name["process zero"]["parent_id"] == by_name["enqueue zero"]["context"]["span_id"]
    assert by_name["process zero"]["resource"]["attributes"]["service.name"] == "zero-code"
