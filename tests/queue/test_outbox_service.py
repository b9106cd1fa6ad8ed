"""The enqueue outbox wired by Services (REDKEEP_QUEUE_OUTBOX): HTTP, readiness and metrics
while a private redis-server is down, and a degraded start."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from redkeep.config import Settings
from redkeep.queue import JobStatus
from redkeep.services import Services
from tests.web.server import TOKEN, ServerThread, redis_settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def sample(client: httpx.Client, name: str, **labels: str) -> float | None:
    text = client.get("/metrics", headers=AUTH).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def ready(client: httpx.Client) -> httpx.Response:
    time.sleep(1.05)  # past the probe's one-second cache
    return client.get("/health/ready")


def test_http_enqueues_are_held_while_redis_is_down_and_reported(
    redis_server_factory: Callable[..., Any], prefix: str, tmp_path: Path
) -> None:
    redis = redis_server_factory()
    settings = redis_settings(
        redis.url, prefix, command_timeout=0.5, connect_timeout=0.5, retry_attempts=0,
        breaker_reset_timeout=0.3, queue_outbox=tmp_path / "outbox.sqlite3",
        queue_outbox_max_jobs=2,
    )  # fmt: skip
    server = ServerThread(settings).start()
    try:
        check_http_outbox(server, redis)
    finally:
        server.stop()


def check_http_outbox(server: ServerThread, redis: Any) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        redis.kill()
        r = client.post("/v1/queues/mail/jobs", json={"name": "send", "payload": {"to": 1}},
                        headers=AUTH)  # fmt: skip
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["status"] == "outbox"
        r = client.get(f"/v1/queues/mail/jobs/{job['id']}", headers=AUTH)
        assert r.status_code == 200 and r.json()["status"] == "outbox"
        listed = client.get("/v1/queues/mail/jobs?status=outbox", headers=AUTH).json()["jobs"]
        assert [j["id"] for j in listed] == [job["id"]]
        r = client.post(f"/v1/queues/mail/jobs/{job['id']}/cancel", headers=AUTH)
        assert r.status_code == 409 and "outbox" in r.json()["error"]["message"]

        # Redis is down, yet enqueues succeed: ready, degraded, with the outbox's state.
        r = ready(client)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "degraded" and "outbox" in body["reason"]
        outbox = body["components"]["outbox"]
        assert (outbox["status"], outbox["jobs"], outbox["queues"]) == ("holding", 1, {"mail": 1})
        assert outbox["oldest_age_s"] >= 0 and outbox["max_jobs"] == 2
        assert sample(client, "redkeep_outbox_jobs", queue="mail") == 1
        age = sample(client, "redkeep_outbox_oldest_age_seconds", queue="mail")
        assert age is not None and age >= 1.0  # held since before ready() slept 1.05 s
        assert (sample(client, "redkeep_outbox_bytes") or 0) > 0
        assert sample(client, "redkeep_outbox_held_total", queue="mail") == 1
        assert sample(client, "redkeep_outbox_max_jobs") == 2

        # Full: a typed 503, and the service is no longer ready.
        assert client.post("/v1/queues/mail/jobs", json={"name": "send"}, headers=AUTH).is_success
        r = client.post("/v1/queues/mail/jobs", json={"name": "send"}, headers=AUTH)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["type"] == "outbox_full" and "retry-after" in r.headers
        r = ready(client)
        assert r.status_code == 503 and r.json()["components"]["outbox"]["status"] == "full"
        assert sample(client, "redkeep_outbox_rejected_total", queue="mail") == 1

        redis.start()
        assert wait_for(lambda: ready(client).json()["components"]["outbox"]["jobs"] == 0)
        r = client.get(f"/v1/queues/mail/jobs/{job['id']}", headers=AUTH)
        assert r.json()["status"] == "waiting"
        counts = client.get("/v1/queues/mail/counts", headers=AUTH).json()["counts"]
        assert (counts["waiting"], counts["outbox"]) == (2, 0)
        assert sample(client, "redkeep_outbox_relayed_total", queue="mail") == 2
        assert ready(client).json()["status"] == "ready"


async def test_a_degraded_start_holds_enqueues_at_once(prefix: str, tmp_path: Path) -> None:
    settings = Settings(
        redis_url="redis://127.0.0.1:1", key_prefix=prefix, startup="degraded",
        connect_max_wait=0.1, queue_outbox=tmp_path / "o.sqlite3",
    )  # fmt: skip
    async with Services(settings) as services:
        assert services.outbox is not None and services.outbox.breaker.state == "open"
        job = await services.queue("q").enqueue("a", [1, 2])
        assert job.status == JobStatus.OUTBOX
        health = await services.health()
        assert health["ready"] is True and health["components"]["outbox"]["jobs"] == 1
    # Closed with the job still held: it stays in the file for the next start.
    async with Services(settings) as services:
        held = await services.queue("q").get_job(job.id)
        assert held is not None and held.payload == [1, 2]


async def test_the_memory_backend_ignores_the_outbox_with_a_warning(tmp_path: Path) -> None:
    settings = Settings(backend="memory", queue_outbox=tmp_path / "o.sqlite3")
    async with Services(settings) as services:
        assert services.outbox is None
        assert any("QUEUE_OUTBOX is ignored" in w for w in services.warnings)
        assert (await services.queue().enqueue("a")).status == JobStatus.WAITING
    assert not (tmp_path / "o.sqlite3").exists()
