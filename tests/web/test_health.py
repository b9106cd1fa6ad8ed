"""/health/live and /health/ready against a private redis-server that is killed and restarted."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tests.web.server import TOKEN, ServerThread, redis_settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PASSWORD = "health-test-password-91"


def wait_ready(client: httpx.Client, want: int, timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get("/health/ready")
        if r.status_code == want or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def ping_count(client: httpx.Client) -> float:
    text = client.get("/metrics", headers=AUTH).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if (
                s.name == "redkeep_redis_command_duration_seconds_count"
                and s.labels.get("command") == "PING"
            ):
                return s.value
    return 0.0


def test_ready_goes_503_when_redis_dies_and_200_when_back(
    serve: Callable[..., ServerThread], redis_server_factory: Any, prefix: str
) -> None:
    redis = redis_server_factory(requirepass=PASSWORD)
    server = serve(
        redis_settings(
            redis.url, prefix, command_timeout=0.5, connect_timeout=0.5, retry_attempts=0
        )
    )
    with httpx.Client(base_url=server.url, timeout=10) as client:
        r = client.get("/health/ready")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["ready"] is True
        backend = body["components"]["backend"]
        assert backend["status"] == "up"
        assert backend["backend"] == "redis"
        assert backend["latency_ms"] >= 0
        assert backend["url"] == f"redis://:***@127.0.0.1:{redis.port}/0"
        assert PASSWORD not in r.text

        redis.kill()
        r = wait_ready(client, 503)
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["ready"] is False
        assert body["components"]["backend"]["status"] == "down"
        assert body["reason"]
        assert PASSWORD not in r.text
        assert client.get("/health/live").status_code == 200

        # The API during the outage: queue routes answer 503, caches answer from the fallback.
        r = client.post("/v1/queues/default/jobs", json={"name": "echo"}, headers=AUTH)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["type"] == "backend_unavailable"
        assert "retry-after" in r.headers
        assert PASSWORD not in r.text
        assert client.get("/v1/queues/default/counts", headers=AUTH).status_code == 503
        r = client.put("/v1/caches/c/keys/k", json={"value": 1}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert client.get("/v1/caches/c/keys/k", headers=AUTH).json()["value"] == 1
        time.sleep(1.1)  # past the probe's cache window
        body = client.get("/health/ready").json()
        assert body["components"]["caches"]["caches"]["c"]["status"] == "fallback"

        redis.start()
        r = wait_ready(client, 200)
        assert r.status_code == 200, r.text
        assert r.json()["components"]["backend"]["status"] == "up"


def test_ready_probe_is_cached(
    serve: Callable[..., ServerThread], redis_url: str, prefix: str
) -> None:
    # Many probes within the cache window cost at most a couple of PINGs, not one each.
    server = serve(redis_settings(redis_url, prefix, health_check_interval=0))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.get("/health/ready")
        before = ping_count(client)
        start = time.monotonic()
        for _ in range(20):
            assert client.get("/health/ready").status_code == 200
        elapsed = time.monotonic() - start
        after = ping_count(client)
    # One PING per ~1 s cache window (plus one for a window boundary), never one per probe.
    assert after - before <= int(elapsed) + 2
    assert after - before < 20


def test_ready_says_whether_a_worker_runs_here(
    serve: Callable[..., ServerThread], redis_url: str, prefix: str
) -> None:
    from redkeep.examples import handlers
    from redkeep.web.health import NO_WORKER_HINT

    idle = serve(redis_settings(redis_url, prefix))
    worker = httpx.get(f"{idle.url}/health/ready", timeout=10).json()["components"]["worker"]
    assert worker == {"running": False, "hint": NO_WORKER_HINT}
    busy = serve(redis_settings(redis_url, prefix), handlers)
    worker = httpx.get(f"{busy.url}/health/ready", timeout=10).json()["components"]["worker"]
    assert worker == {"running": True, "queues": ["default"], "handlers": ["echo", "fail", "sleep"]}
