"""The HTTP API end to end: a real uvicorn on a loopback port, services on the shared Redis
(unique key prefix per test), bearer-token auth, the example handlers in an embedded worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.web.server import TOKEN, ServerThread, redis_settings

from redkeep.config import Settings
from redkeep.examples import handlers

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def server(serve: Callable[..., ServerThread], redis_url: str, prefix: str) -> ServerThread:
    return serve(redis_settings(redis_url, prefix), handlers)


@pytest.fixture
def client(server: ServerThread) -> httpx.Client:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as c:
        yield c


def wait_for_status(client: httpx.Client, queue: str, job_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        job = client.get(f"/v1/queues/{queue}/jobs/{job_id}").json()
        if job["status"] == status or time.monotonic() > deadline:
            return job
        time.sleep(0.02)


def metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


# -- auth -----------------------------------------------------------------------------------------
def test_token_required_except_health(server: ServerThread) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as anon:
        r = anon.get("/v1/queues/default/counts")
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
        r = anon.get("/metrics", headers={"Authorization": "Bearer wrong-token"})
        assert r.status_code == 401
        assert "wrong-token" not in r.text
        assert anon.get("/openapi.json").status_code == 401
        assert anon.get("/health/live").status_code == 200
        assert anon.get("/health/ready").status_code == 200


# -- caches ---------------------------------------------------------------------------------------
def test_cache_round_trip(client: httpx.Client) -> None:
    key = "user:1/profile {x}"  # slashes, spaces and braces travel percent-encoded
    path = "/v1/caches/sessions/keys/" + httpx.URL("/" + key).raw_path.decode()[1:]
    r = client.put(path, json={"value": {"name": "Ada", "tags": [1, 2]}, "ttl": 60})
    assert r.status_code == 200, r.text
    r = client.get(path)
    assert r.status_code == 200
    body = r.json()
    assert body["key"] == key
    assert body["value"] == {"name": "Ada", "tags": [1, 2]}
    assert 0 < body["ttl"] <= 60
    client.put(path, json={"value": None})  # a stored null is not a miss
    assert client.get(path).json()["value"] is None
    assert client.delete(path).json()["deleted"] is True
    assert client.delete(path).json()["deleted"] is False
    assert client.get(path).status_code == 404
    stats = client.get("/v1/caches/sessions/stats").json()["stats"]
    assert stats["hits"] == 2
    assert stats["misses"] == 1
    assert stats["sets"] == 2


def test_cache_bad_requests(client: httpx.Client, server: ServerThread) -> None:
    json_type = {"content-type": "application/json"}
    r = client.put("/v1/caches/sessions/keys/k", content=b"{not json", headers=json_type)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_json"
    r = client.put("/v1/caches/sessions/keys/k", json={"value": 1, "ttl": -5})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "ttl"
    r = client.put("/v1/caches/sessions/keys/k", json={"value": 1, "extra": True})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "extra"
    r = client.get("/v1/caches/bad name!/keys/k")
    assert r.status_code == 400
    assert r.json()["error"]["field"] == "name"
    long_key = "k" * (server.services.settings.cache_max_key_length + 1)
    r = client.get(f"/v1/caches/sessions/keys/{long_key}")
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_key"
    r = client.patch("/v1/caches/sessions/keys/k")
    assert r.status_code == 405
    assert r.json()["error"]["type"] == "method_not_allowed"


def test_payload_too_large(client: httpx.Client, server: ServerThread) -> None:
    limit = server.services.settings.max_payload_bytes
    r = client.put("/v1/caches/big/keys/k", json={"value": "x" * (limit + 10)})
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "payload_too_large"


# -- queues ---------------------------------------------------------------------------------------
def test_enqueue_and_watch_complete(client: httpx.Client) -> None:
    r = client.post("/v1/queues/default/jobs", json={"name": "echo", "payload": {"hello": "world"}})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["name"] == "echo"
    assert "token" not in job
    done = wait_for_status(client, "default", job["id"], "completed")
    assert done["status"] == "completed"
    assert done["result"] == {"hello": "world"}
    counts = client.get("/v1/queues/default/counts").json()["counts"]
    assert counts["completed"] == 1
    listed = client.get("/v1/queues/default/jobs", params={"status": "completed"}).json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]


def test_idempotent_enqueue_with_job_id(client: httpx.Client) -> None:
    body = {"name": "sleep", "payload": {"seconds": 0}, "job_id": "order-42", "delay": 60}
    first = client.post("/v1/queues/q1/jobs", json=body).json()
    second = client.post("/v1/queues/q1/jobs", json=body).json()
    assert first["id"] == second["id"] == "order-42"
    assert client.get("/v1/queues/q1/counts").json()["counts"]["delayed"] == 1


def test_cancel_and_retry(client: httpx.Client) -> None:
    delayed = client.post("/v1/queues/q2/jobs", json={"name": "echo", "delay": 60}).json()
    r = client.post(f"/v1/queues/q2/jobs/{delayed['id']}/cancel")
    assert r.json() == {"id": delayed["id"], "cancelled": True}
    assert client.get(f"/v1/queues/q2/jobs/{delayed['id']}").json()["status"] == "cancelled"
    assert client.post(f"/v1/queues/q2/jobs/{delayed['id']}/cancel").json()["cancelled"] is False

    r = client.post(
        "/v1/queues/default/jobs",
        json={"name": "fail", "payload": {"message": "boom"}, "max_attempts": 1},
    )
    failed = wait_for_status(client, "default", r.json()["id"], "failed")
    assert failed["status"] == "failed"
    assert failed["error"]["message"] == "boom"
    assert failed["error"]["type"] == "RuntimeError"
    r = client.post(f"/v1/queues/default/jobs/{failed['id']}/retry")
    assert r.status_code == 200
    assert r.json()["status"] in ("waiting", "active", "failed")
    assert r.json()["attempts"] <= 1
    # A job that is not failed cannot be retried; unknown ids are 404.
    ok = client.post("/v1/queues/default/jobs", json={"name": "echo"}).json()
    wait_for_status(client, "default", ok["id"], "completed")
    assert client.post(f"/v1/queues/default/jobs/{ok['id']}/retry").status_code == 409
    assert client.post("/v1/queues/default/jobs/nope/retry").status_code == 404
    assert client.get("/v1/queues/default/jobs/nope").status_code == 404


def test_queue_bad_requests(client: httpx.Client) -> None:
    r = client.post("/v1/queues/default/jobs", json={"payload": 1})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "name"
    r = client.post("/v1/queues/default/jobs", json={"name": "echo", "priority": 10**6})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "priority"
    r = client.post("/v1/queues/default/jobs", json=[1, 2])
    assert r.status_code == 400
    r = client.get("/v1/queues/default/jobs", params={"status": "bogus"})
    assert r.status_code == 400
    assert r.json()["error"]["field"] == "status"
    r = client.get("/v1/queues/default/jobs", params={"limit": "many"})
    assert r.status_code == 400
    assert r.json()["error"]["field"] == "limit"


# -- metrics --------------------------------------------------------------------------------------
def test_metrics_after_known_operations(client: httpx.Client, server: ServerThread) -> None:
    assert httpx.get(f"{server.url}/v1/queues/default/counts").status_code == 401
    assert client.get("/no/such/path/12345").status_code == 404
    client.put("/v1/caches/m/keys/present", json={"value": 1})  # opens cache "m"
    for _ in range(3):
        client.get("/v1/caches/m/keys/absent")
    client.get("/v1/caches/m/keys/present")
    job = client.post("/v1/queues/metrics-q/jobs", json={"name": "echo", "delay": 60}).json()
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    route = "/v1/caches/{name}/keys/{key}"
    assert metric(text, "redkeep_http_requests_total", method="GET", route=route, status="404") == 3
    assert metric(text, "redkeep_http_requests_total", method="GET", route=route, status="200") == 1
    assert metric(text, "redkeep_cache_misses_total", cache="m") == 3
    assert metric(text, "redkeep_cache_hits_total", cache="m") == 1
    assert metric(text, "redkeep_queue_jobs", queue="metrics-q", status="delayed") == 1
    assert metric(text, "redkeep_queue_jobs", queue="metrics-q", status="waiting") == 0
    assert metric(text, "redkeep_queue_paused", queue="metrics-q") == 0
    client.post("/v1/queues/metrics-q/pause")
    assert metric(client.get("/metrics").text, "redkeep_queue_paused", queue="metrics-q") == 1
    gets = metric(
        text, "redkeep_redis_command_duration_seconds_count", transport="mux", command="GET"
    )
    assert gets is not None and gets >= 4
    assert metric(text, "redkeep_connection_state", connection="redis", state="ready") == 1
    assert metric(text, "redkeep_breaker_state", breaker="cache", state="closed") == 1
    counts = "/v1/queues/{queue}/counts"
    assert metric(text, "redkeep_http_requests_total", route=counts, status="401") == 1
    assert metric(text, "redkeep_http_requests_total", route="<unmatched>", status="404") == 1
    assert "12345" not in text
    assert TOKEN not in text
    assert job["id"] not in text  # ids and keys never become labels
    assert "absent" not in text


def test_job_metrics_and_oldest_waiting_age(
    serve: Callable[..., ServerThread], redis_url: str, prefix: str
) -> None:
    # No worker: a job stays waiting, so its age grows; then a worker-run service completes one.
    idle = serve(redis_settings(redis_url, prefix))
    with httpx.Client(base_url=idle.url, headers=AUTH, timeout=10) as c:
        c.post("/v1/queues/ages/jobs", json={"name": "echo"})
        time.sleep(0.3)
        text = c.get("/metrics").text
    age = metric(text, "redkeep_queue_oldest_waiting_age_seconds", queue="ages")
    assert age is not None and 0.25 <= age < 10
    assert metric(text, "redkeep_queue_jobs", queue="ages", status="waiting") == 1

    busy = serve(redis_settings(redis_url, prefix), handlers)
    with httpx.Client(base_url=busy.url, headers=AUTH, timeout=10) as c:
        job = c.post("/v1/queues/default/jobs", json={"name": "echo", "payload": 1}).json()
        wait_for_status(c, "default", job["id"], "completed")
        body = {"name": "fail", "max_attempts": 2}
        failing = c.post("/v1/queues/default/jobs", json=body).json()
        assert wait_for_status(c, "default", failing["id"], "failed")["attempts"] == 2
        text = c.get("/metrics").text
    retries = metric(text, "redkeep_job_retries_total", queue="default", handler="fail")
    assert retries == 1
    failed = metric(
        text, "redkeep_job_duration_seconds_count", queue="default", handler="fail", status="failed"
    )
    assert failed == 1
    count = metric(
        text,
        "redkeep_job_duration_seconds_count",
        queue="default",
        handler="echo",
        status="completed",
    )
    assert count == 1


def test_openapi_document(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    paths = set(doc["paths"])
    assert {
        "/v1/caches/{name}/keys/{key}",
        "/v1/caches/{name}/stats",
        "/v1/queues/{queue}/jobs",
        "/v1/queues/{queue}/jobs/{job_id}",
        "/v1/queues/{queue}/jobs/{job_id}/cancel",
        "/v1/queues/{queue}/jobs/{job_id}/retry",
        "/v1/queues/{queue}/counts",
        "/health/ready",
        "/health/live",
        "/metrics",
    } <= paths


def test_openapi_document_validates_against_the_openapi_31_schema() -> None:
    import copy

    import jsonschema_rs
    from schemathesis.specs.openapi.definitions import OPENAPI_31  # the official 3.1 schema

    from redkeep.web.app import create_app

    doc = create_app(settings=redkeep_settings()).openapi()
    validator = jsonschema_rs.validator_for(OPENAPI_31)
    errors = [str(e) for e in validator.iter_errors(doc)]
    assert errors == []
    broken = copy.deepcopy(doc)
    broken["paths"]["/health/live"]["get"]["responses"] = {"200": {"content": {}}}  # no description
    assert not validator.is_valid(broken)


def redkeep_settings() -> Settings:
    return Settings(backend="memory")
