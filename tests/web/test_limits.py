"""Pause and resume over HTTP (a real uvicorn server on Redis, with a worker inside)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from tests.web.server import TOKEN, ServerThread, redis_settings

from redkeep.examples import handlers

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_pause_and_resume_routes(
    serve: Callable[..., ServerThread], redis_url: str, prefix: str
) -> None:
    server = serve(redis_settings(redis_url, prefix), handlers)
    q = f"{server.url}/v1/queues/default"
    assert httpx.post(f"{q}/pause").status_code == 401  # a write needs the token
    with httpx.Client(headers=AUTH, timeout=10) as http:
        assert http.get(f"{q}/counts").json()["paused"] is False
        r = http.post(f"{q}/pause")
        assert r.status_code == 200, r.text
        assert r.json() == {"queue": "default", "paused": True}
        job = http.post(f"{q}/jobs", json={"name": "echo", "payload": 1}).json()
        time.sleep(0.5)
        assert http.get(f"{q}/jobs/{job['id']}").json()["status"] == "waiting"
        counts = http.get(f"{q}/counts").json()
        assert counts["paused"] is True and counts["counts"]["waiting"] == 1
        assert http.post(f"{q}/resume").json() == {"queue": "default", "paused": False}
        done = http.get(f"{q}/jobs/{job['id']}", params={"wait": 10}).json()
        assert done["status"] == "completed"
        assert http.post(f"{server.url}/v1/queues/bad name!/pause").status_code == 400
