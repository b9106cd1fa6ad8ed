"""Strict request validation and the OpenAPI document generated from the same models; reads of
unknown names never fill the service's table of named caches and queues."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from redkeep.config import Settings
from redkeep.queue.view import JOB_FIELDS
from redkeep.services import MAX_NAMED, Services, create_services
from redkeep.web.app import create_app
from redkeep.web.caches import CachePut
from redkeep.web.queues import EnqueueRequest

BIG = 123456789012345678901234567890  # over 64 bits: orjson would read it as a float


@pytest.fixture(params=["memory", "redis"])
async def svc(request: pytest.FixtureRequest, redis_url: str, prefix: str) -> AsyncIterator[Any]:
    if request.param == "memory":
        settings = Settings(backend="memory")
    else:
        settings = Settings(backend="redis", redis_url=redis_url, key_prefix=prefix)
    services = create_services(settings)
    await services.start()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)), base_url="http://127.0.0.1"
    )
    try:
        yield services, client
    finally:
        await client.aclose()
        await services.close()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("priority", "5"),  # no str -> int
        ("priority", True),  # no bool -> int
        ("priority", 5.0),  # no float -> int
        ("max_attempts", "3"),
        ("delay", "1.5"),  # no str -> float
        ("delay", False),
        ("name", 7),  # no int -> str
        ("job_id", 42),
        ("headers", {"n": 1}),  # no int -> str
        ("headers", ["traceparent"]),
    ],
)
async def test_enqueue_fields_are_strict(svc: Any, field: str, value: Any) -> None:
    services, client = svc
    r = await client.post("/v1/queues/strict/jobs", json={"name": "echo", field: value})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["type"] == "validation_error"
    assert r.json()["error"]["field"].split(".")[0] == field  # headers.n: the header named
    assert (await services.queue_view("strict").counts())["waiting"] == 0


async def test_big_integers_are_never_turned_into_floats(svc: Any) -> None:
    services, client = svc
    r = await client.put("/v1/caches/big/keys/k", json={"value": {"n": BIG}})
    assert r.status_code == 200, r.text
    assert await services.cache("big").get("k") == {"n": BIG}
    r = await client.put("/v1/caches/big/keys/k", json={"value": 1, "ttl": True})
    assert r.status_code == 422 and r.json()["error"]["field"] == "ttl"
    r = await client.post("/v1/queues/big/jobs", json={"name": "echo", "payload": BIG})
    # The job payload keeps the exact integer, or is refused; never a rounded float.
    if r.status_code == 201:
        job = await services.queue_view("big").get_job(r.json()["id"])
        assert job.payload == BIG and type(job.payload) is int
    else:
        assert r.status_code == 422, r.text
        assert r.json()["error"]["type"] == "serialization_error"


async def test_openapi_schemas_are_the_validation_models(svc: Any) -> None:
    _, client = svc
    doc = (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    for model in (EnqueueRequest, CachePut):
        generated = schemas[model.__name__]
        assert set(generated["properties"]) == set(model.model_fields)
        assert generated["additionalProperties"] is False
        assert generated.get("required", []) == [
            n for n, f in model.model_fields.items() if f.is_required()
        ]
    assert schemas["EnqueueRequest"]["properties"]["priority"]["maximum"] == 1000
    assert list(schemas["JobView"]["properties"]) == list(JOB_FIELDS)
    post = doc["paths"]["/v1/queues/{queue}/jobs"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EnqueueRequest"
    }
    assert "HTTPValidationError" not in str(doc)  # only redkeep's error body is ever sent
    assert doc["paths"]["/health/ready"]["get"]["security"] == []
    assert doc["security"] == [{"bearer": []}]


def _table(services: Services) -> tuple[list[str], list[str]]:
    assert services.caches is not None
    return services.caches.names(), services.queue_names()


async def test_reads_of_unknown_names_never_fill_the_table(svc: Any) -> None:
    services, client = svc
    for i in range(MAX_NAMED + 4):
        assert (await client.get(f"/v1/queues/probe{i}/counts")).status_code == 200
        assert (await client.get(f"/v1/queues/probe{i}/jobs/x")).status_code == 404
        assert (await client.get(f"/v1/caches/probe{i}/keys/k")).status_code == 404
        assert (await client.delete(f"/v1/caches/probe{i}/keys/k")).status_code == 200
        assert (await client.get(f"/v1/caches/probe{i}/stats")).status_code == 200
    assert (await client.get("/v1/queues/probe1/jobs?status=failed")).json()["jobs"] == []
    assert _table(services) == ([], [])
    r = await client.post("/v1/queues/real/jobs", json={"name": "echo"})
    assert r.status_code == 201, r.text
    assert (await client.put("/v1/caches/real/keys/k", json={"value": 1})).status_code == 200
    assert _table(services) == (["real"], ["real"])
    assert (await client.get("/v1/queues/real/counts")).json()["counts"]["waiting"] == 1


async def test_a_read_that_finds_data_keeps_the_cache(redis_url: str, prefix: str) -> None:
    """On Redis another process may have filled a cache: a hit opens it, so its counters
    (and metrics) are kept from then on; probes that find nothing never do."""
    settings = Settings(backend="redis", redis_url=redis_url, key_prefix=prefix)
    async with create_services(settings) as writer:
        await writer.cache("shared").set("k", "v")
    async with create_services(settings) as services:
        app = create_app(services)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
        ) as client:
            assert (await client.get("/v1/caches/shared/keys/nope")).status_code == 404
            assert _table(services)[0] == []
            assert (await client.get("/v1/caches/shared/keys/k")).json()["value"] == "v"
            assert _table(services)[0] == ["shared"]
            await client.get("/v1/caches/shared/keys/k")
            stats = (await client.get("/v1/caches/shared/stats")).json()["stats"]
            assert stats["hits"] == 1


async def test_a_full_memory_queue_answers_503_queue_full() -> None:
    services = create_services(Settings(backend="memory", queue_memory_max_bytes=20_000))
    await services.start()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)), base_url="http://127.0.0.1"
    )
    try:
        body = {"name": "echo", "payload": "x" * 4000}
        statuses = [
            (await client.post("/v1/queues/small/jobs", json=body)).status_code for _ in range(6)
        ]
        assert statuses[:4] == [201] * 4 and statuses[-1] == 503
        r = await client.post("/v1/queues/small/jobs", json=body)
        assert r.json()["error"]["type"] == "queue_full"
        assert "REDKEEP_QUEUE_MEMORY_MAX_BYTES" in r.json()["error"]["message"]
        assert r.headers["retry-after"] == "1"
        assert (await client.get("/v1/queues/small/counts")).json()["counts"]["waiting"] == 4
    finally:
        await client.aclose()
        await services.close()


async def test_enqueue_headers_are_stored_and_shown(svc: Any) -> None:
    services, client = svc
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    r = await client.post("/v1/queues/hdr/jobs", json={"name": "echo", "headers": headers})
    assert r.status_code == 201, r.text
    assert r.json()["headers"] == headers
    job = await services.queue("hdr").get_job(r.json()["id"])
    assert job is not None and job.headers == headers
    shown = (await client.get(f"/v1/queues/hdr/jobs/{job.id}")).json()
    assert shown["headers"] == headers
    too_many = {f"h{i}": "v" for i in range(40)}
    r = await client.post("/v1/queues/hdr/jobs", json={"name": "echo", "headers": too_many})
    assert r.status_code == 422 and r.json()["error"]["field"] == "headers"
