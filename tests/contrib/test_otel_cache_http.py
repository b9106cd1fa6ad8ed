"""OpenTelemetry spans of caches (CLIENT, one per call of the outermost cache) and of the HTTP
API (SERVER, by route template); no span and no header while tracing is not configured, and
nothing of OpenTelemetry loaded or patched until the instrumentor is used."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from typing import Any

import httpx
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from redkeep.cache.fallback import FallbackCache
from redkeep.cache.memory import MemoryCache
from redkeep.cache.redis import RedisCache
from redkeep.config import Settings
from redkeep.errors import RedkeepError
from redkeep.redis.mux import MuxClient
from redkeep.services import create_services
from redkeep.web.app import create_app
from tests.contrib.conftest import Traced, traceparent


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes)


# -- caches ------------------------------------------------------------------------------------
async def test_memory_cache_calls_are_client_spans(traced: Traced) -> None:
    cache = MemoryCache("sessions")
    await cache.set("user:1", {"n": 1})
    assert await cache.get("user:1") == {"n": 1}
    assert await cache.get("user:2", "dflt") == "dflt"
    assert await cache.delete("user:1") is True
    spans = traced.spans()
    assert [(s.name, s.kind) for s in spans] == [
        ("set sessions", SpanKind.CLIENT),
        ("get sessions", SpanKind.CLIENT),
        ("get sessions", SpanKind.CLIENT),
        ("delete sessions", SpanKind.CLIENT),
    ]
    assert _attrs(spans[1]) == {
        "db.system.name": "memory",
        "db.operation.name": "get",
        "db.collection.name": "sessions",
        "redkeep.cache.backend": "memory",
        "redkeep.cache.hit": True,
    }
    assert spans[2].attributes["redkeep.cache.hit"] is False


@pytest.mark.parametrize("l1", [False, True], ids=["fallback", "tiered"])
async def test_a_cache_stack_makes_one_span_per_call(
    traced: Traced, redis_url: str, prefix: str, l1: bool
) -> None:
    """The services' cache is a fallback cache over Redis (behind an L1 when tiered): each call
    is one span of the outermost cache, whatever the layers below do."""
    settings = Settings(
        backend="redis", redis_url=redis_url, key_prefix=prefix, cache_l1_enabled=l1
    )
    async with create_services(settings) as services:
        cache = services.cache("profiles")
        await cache.set("secret-key-1", None)  # a stored None is a hit
        assert await cache.get("secret-key-1", "dflt") is None
        assert await cache.get("secret-key-1") is None  # from the L1 when tiered
        assert await cache.get("absent", "dflt") == "dflt"
        await cache.set_many({"a": 1, "b": 2})
        assert await cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
        assert await cache.incr("n", 5) == 5
        assert await cache.get_or_set("filled", lambda: 7) == 7
        assert await cache.delete_many(["a", "b"]) == 2
    names = [s.name for s in traced.spans()]
    assert names == [
        "set profiles", "get profiles", "get profiles", "get profiles", "set_many profiles",
        "get_many profiles", "incr profiles", "get profiles", "set profiles",
        "delete_many profiles",
    ]  # fmt: skip
    spans = traced.spans()
    backend = "tiered" if l1 else "fallback"
    assert {s.attributes["redkeep.cache.backend"] for s in spans} == {backend}
    assert {s.attributes["db.system.name"] for s in spans} == {"redis"}
    assert {s.kind for s in spans} == {SpanKind.CLIENT}
    assert [s.attributes.get("redkeep.cache.hit") for s in spans if s.name == "get profiles"] == [
        True, True, False, False,
    ]  # fmt: skip
    get_many = traced.one("get_many profiles")
    assert get_many.attributes["db.operation.batch.size"] == 3
    assert get_many.attributes["db.response.returned_rows"] == 2
    assert traced.one("set_many profiles").attributes["db.operation.batch.size"] == 2
    # Keys and values are never recorded.
    recorded = json.dumps([_attrs(s) for s in spans] + [s.name for s in spans])
    assert "secret-key-1" not in recorded and '"a"' not in recorded


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


async def test_a_failed_cache_call_records_the_error_and_a_fallback_says_so(
    traced: Traced,
) -> None:
    client = MuxClient(_dead_url())
    try:
        redis_cache = RedisCache(client, "down")
        with pytest.raises(RedkeepError):
            await redis_cache.get("k")
        failed = traced.one("get down")
        assert failed.status.status_code == StatusCode.ERROR
        assert failed.attributes["error.type"].startswith("redkeep.errors.")
        assert [e.name for e in failed.events] == ["exception"]

        fallback = FallbackCache(RedisCache(client, "degraded"), MemoryCache("degraded"))
        await fallback.set("k", 1)  # answered from memory: no error reaches the caller
        served = traced.one("set degraded")
        assert served.status.status_code == StatusCode.UNSET
        assert served.attributes["redkeep.cache.fallback"] is True
        assert served.attributes["redkeep.cache.backend"] == "fallback"
    finally:
        await client.close()


# -- HTTP --------------------------------------------------------------------------------------
async def test_http_requests_are_server_spans_named_by_route(traced: Traced) -> None:
    async with create_services(Settings(backend="memory")) as services:
        app = create_app(services)
        remote = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
        ) as client:
            r = await client.post(
                "/v1/queues/mail/jobs",
                json={"name": "send", "payload": {"to": "a@example.com"}},
                headers={"traceparent": remote},
            )
            assert r.status_code == 201, r.text
            assert (await client.get("/health/live")).status_code == 200
            assert (await client.get("/metrics")).status_code == 200
            assert (await client.get("/v1/nothing/here")).status_code == 404
            assert (await client.put("/v1/caches/c/keys/k", json={"value": 1})).status_code == 200
    server = traced.one("POST /v1/queues/{queue}/jobs", SpanKind.SERVER)
    assert server.attributes["http.route"] == "/v1/queues/{queue}/jobs"
    assert f"{server.context.trace_id:032x}" == remote.split("-")[1]  # continues the caller's
    assert server.parent.span_id == int(remote.split("-")[2], 16)
    producer = traced.one("enqueue mail", SpanKind.PRODUCER)
    assert producer.parent.span_id == server.context.span_id
    assert r.json()["headers"] == {"traceparent": traceparent(producer)}
    put = traced.one("PUT /v1/caches/{name}/keys/{key}", SpanKind.SERVER)
    assert traced.one("set c").parent.span_id == put.context.span_id
    # Probes and scrapes make no span; an unknown path is named by its method only.
    servers = [s.name for s in traced.spans(kind=SpanKind.SERVER)]
    assert sorted(servers) == [
        "GET",
        "POST /v1/queues/{queue}/jobs",
        "PUT /v1/caches/{name}/keys/{key}",
    ]
    assert not [s for s in traced.spans() if s.kind == SpanKind.INTERNAL]  # no send/receive


# -- no tracing configured, not instrumented ---------------------------------------------------
def _run(code: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_instrumented_but_not_configured_means_no_span_and_no_header() -> None:
    """Instrumented before any tracer provider exists: calls run as untraced (the enqueue takes
    its fast path, no header is added); once the application sets the global provider, spans
    start without instrumenting again, and a request is traced once."""
    result = _run(
        """
        import asyncio, json, time
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from redkeep.contrib.otel import LOOK_INTERVAL, RedkeepInstrumentor
        from redkeep.queue import MemoryJobQueue

        RedkeepInstrumentor().instrument()
        q = MemoryJobQueue("q")
        before = asyncio.run(q.enqueue("x"))
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        time.sleep(LOOK_INTERVAL)  # spans start within this interval of the provider being set
        after = asyncio.run(q.enqueue("x"))

        async def request():
            from redkeep.services import create_services
            from redkeep.web.app import create_app
            import httpx

            async with create_services() as services:
                transport = httpx.ASGITransport(app=create_app(services))
                async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                    assert (await c.get("/v1/queues/q/counts")).status_code == 200

        asyncio.run(request())
        print(json.dumps({"before": dict(before.headers), "after": dict(after.headers),
                          "spans": [s.name for s in exporter.get_finished_spans()]}))
        """
    )
    assert result["before"] == {}
    assert list(result["after"]) == ["traceparent"]
    # One server span per request, though FastAPI may trace requests by itself too.
    assert result["spans"] == ["enqueue q", "GET /v1/queues/{queue}/counts"]


def test_redkeep_works_without_opentelemetry_installed() -> None:
    """With every ``opentelemetry`` import failing (as when it is not installed), queues, caches
    and services work, and only the integration itself asks for the extra. (The HTTP server's
    FastAPI needs opentelemetry-api itself from 0.16x on.)"""
    result = _run(
        """
        import asyncio, importlib.abc, json, sys

        class NotInstalled(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "opentelemetry":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, NotInstalled())
        from redkeep.cache.memory import MemoryCache
        from redkeep.queue import MemoryJobQueue, Worker
        from redkeep.services import create_services

        async def main():
            q, cache = MemoryJobQueue("q"), MemoryCache("c")
            job = await q.enqueue("x", 1)
            await cache.set("k", 1)
            worker = Worker(q, {"x": lambda job: job.payload + 1}, handle_signals=False)
            task = asyncio.create_task(worker.run())
            while not (await q.get_job(job.id)).finished:
                await asyncio.sleep(0.01)
            worker.stop()
            await task
            async with create_services() as services:
                await services.cache("c").set("k", 2)
            return (await q.get_job(job.id)).result, await cache.get("k")

        result, cached = asyncio.run(main())
        try:
            import redkeep.contrib.otel
            error = ""
        except ImportError as exc:
            error = str(exc)
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        print(json.dumps({"result": result, "cached": cached, "error": error, "loaded": loaded}))
        """
    )
    assert (result["result"], result["cached"]) == (2, 1)
    assert "pip install 'redkeep[otel]'" in result["error"]
    assert result["loaded"] == []


def test_a_worker_without_the_http_server_installed_is_traced() -> None:
    """``redkeep[otel]`` without ``redkeep[server]`` (a worker-only image): queues and caches
    are traced, HTTP simply is not there to trace."""
    result = _run(
        """
        import asyncio, importlib.abc, json, sys

        class NotInstalled(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("fastapi", "starlette"):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, NotInstalled())
        from opentelemetry.sdk.trace import TracerProvider
        from redkeep.contrib.otel import RedkeepInstrumentor
        from redkeep.queue import MemoryJobQueue

        RedkeepInstrumentor().instrument(tracer_provider=TracerProvider())
        job = asyncio.run(MemoryJobQueue("q").enqueue("x"))
        print(json.dumps({"headers": list(job.headers), "web": "redkeep.web.app" in sys.modules}))
        """
    )
    assert result == {"headers": ["traceparent"], "web": False}


def test_uninstrument_restores_every_patched_name(traced: Traced) -> None:
    from redkeep.contrib.otel import CACHE_OPERATIONS, RedkeepInstrumentor
    from redkeep.queue import worker
    from redkeep.queue.base import JobQueue
    from redkeep.web import app

    RedkeepInstrumentor().uninstrument()
    originals = (
        JobQueue.__dict__["enqueue"],
        JobQueue.__dict__["enqueue_many"],
        worker.__dict__["execute_job"],
        [RedisCache.__dict__[op] for op in CACHE_OPERATIONS],
        list(app.APP_HOOKS),
    )
    RedkeepInstrumentor().instrument(tracer_provider=traced.provider)
    assert JobQueue.__dict__["enqueue"] is not originals[0]
    assert len(app.APP_HOOKS) == len(originals[4]) + 1
    RedkeepInstrumentor().uninstrument()
    assert (
        JobQueue.__dict__["enqueue"],
        JobQueue.__dict__["enqueue_many"],
        worker.__dict__["execute_job"],
        [RedisCache.__dict__[op] for op in CACHE_OPERATIONS],
        list(app.APP_HOOKS),
    ) == originals
    RedkeepInstrumentor().instrument(tracer_provider=traced.provider)  # for the fixture's end


def test_the_instrumentor_is_found_by_its_entry_point() -> None:
    from importlib.metadata import entry_points

    from redkeep.contrib.otel import RedkeepInstrumentor

    found = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "redkeep"]
    assert [e.load() for e in found] == [RedkeepInstrumentor]
