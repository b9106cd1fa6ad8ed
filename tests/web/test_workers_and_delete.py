"""``GET /v1/workers`` and ``DELETE /v1/queues/{queue}/jobs/{job_id}`` on a real uvicorn with a
worker inside, on the shared Redis; the dashboard stays out of the OpenAPI document."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import httpx
from tests.web.server import TOKEN, ServerThread, redis_settings

from redkeep.examples import handlers

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_workers_lists_the_worker_inside_the_service(
    serve: Callable[..., ServerThread], redis_url: str, prefix: str
) -> None:
    server = serve(redis_settings(redis_url, prefix), handlers)
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
        assert client.get("/v1/workers", headers={"Authorization": ""}).status_code == 401
        deadline = time.monotonic() + 10
        while not (workers := client.get("/v1/workers").json()["workers"]):
            assert time.monotonic() < deadline, "the worker never registered"
            time.sleep(0.05)
        [worker] = workers
        assert worker["host"] == socket.gethostname() and worker["pid"] == os.getpid()
        assert worker["queues"] == ["default"]
        assert worker["last_heartbeat"] >= worker["started_at"] > time.time() - 60
        doc = client.get("/openapi.json").json()
        assert "/v1/workers" in doc["paths"]
        assert not [p for p in doc["paths"] if p.startswith("/ui")]
    server.stop()
    with httpx.Client(base_url=serve(redis_settings(redis_url, prefix)).url, headers=AUTH) as c:
        assert c.get("/v1/workers").json() == {"workers": []}  # the stopped worker left


def test_delete_a_job(serve: Callable[..., ServerThread], redis_url: str, prefix: str) -> None:
    server = serve(redis_settings(redis_url, prefix))  # no worker: jobs stay where they are
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
        job = client.post("/v1/queues/q/jobs", json={"name": "echo", "delay": 60}).json()
        r = client.delete(f"/v1/queues/q/jobs/{job['id']}")
        assert r.status_code == 200 and r.json() == {"id": job["id"], "deleted": True}
        assert client.get(f"/v1/queues/q/jobs/{job['id']}").status_code == 404
        assert client.get("/v1/queues/q/counts").json()["counts"]["delayed"] == 0
        r = client.delete(f"/v1/queues/q/jobs/{job['id']}")
        assert r.status_code == 404 and r.json()["error"]["type"] == "job_not_found"
