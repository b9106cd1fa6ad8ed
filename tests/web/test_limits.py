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


def test_rate_limit_routes(serve: Callable[..., ServerThread], redis_url: str, prefix: str) -> None:
    server = serve(redis_settings(redis_url, prefix), handlers)
    q = f"{server.url}/v1/queues/default"
    body = {"max_jobs": 2, "per_seconds": 30}
    assert httpx.put(f"{q}/rate-limit", json=body).status_code == 401  # a write needs the token
    assert httpx.delete(f"{q}/rate-limit").status_code == 401
    with httpx.Client(headers=AUTH, timeout=10) as http:
        assert http.get(f"{q}/rate-limit").json() == {"queue": "default", "rate_limit": None}
        r = http.put(f"{q}/rate-limit", json=body)
        assert r.status_code == 200, r.text
        limit = {"max_jobs": 2, "per_seconds": 30.0}
        assert r.json() == {"queue": "default", "rate_limit": limit}
        for bad in ({"max_jobs": 0, "per_seconds": 1}, {"max_jobs": 5, "per_seconds": -1},
                    {"max_jobs": 5}, {"max_jobs": "5", "per_seconds": 1}):  # fmt: skip
            refused = http.put(f"{q}/rate-limit", json=bad)
            assert refused.status_code == 422, (bad, refused.text)
        assert http.get(f"{q}/rate-limit").json()["rate_limit"] == limit  # nothing written
        summary = http.get(f"{q}/counts").json()["limits"]
        assert summary == {"paused": False, "rate_limit": limit, "group_limit": None}
        jobs = [http.post(f"{q}/jobs", json={"name": "echo", "payload": i}).json()
                for i in range(3)]  # fmt: skip
        done = [http.get(f"{q}/jobs/{j['id']}", params={"wait": 10}).json() for j in jobs[:2]]
        assert [d["status"] for d in done] == ["completed", "completed"]
        time.sleep(0.5)
        assert http.get(f"{q}/jobs/{jobs[2]['id']}").json()["status"] == "waiting"
        cleared = http.delete(f"{q}/rate-limit")
        assert cleared.json() == {"queue": "default", "rate_limit": None}
        last = http.get(f"{q}/jobs/{jobs[2]['id']}", params={"wait": 10}).json()
        assert last["status"] == "completed"


def test_group_limit_routes_and_group_field(
    serve: Callable[..., ServerThread], redis_url: str, prefix: str
) -> None:
    server = serve(redis_settings(redis_url, prefix), handlers)
    q = f"{server.url}/v1/queues/default"
    assert httpx.put(f"{q}/group-limit", json={"concurrency": 2}).status_code == 401
    with httpx.Client(headers=AUTH, timeout=10) as http:
        assert http.get(f"{q}/group-limit").json() == {"queue": "default", "group_limit": None}
        r = http.put(f"{q}/group-limit", json={"concurrency": 2, "max_jobs": 5, "per_seconds": 1})
        assert r.status_code == 200, r.text
        limit = {"concurrency": 2, "max_jobs": 5, "per_seconds": 1.0}
        assert r.json() == {"queue": "default", "group_limit": limit}
        for bad in ({"concurrency": 0}, {"concurrency": None}, {"max_jobs": 5},
                    {"concurrency": 2, "per_seconds": 1},
                    {"concurrency": "2"}, {"max_jobs": -1, "per_seconds": 1}):  # fmt: skip
            refused = http.put(f"{q}/group-limit", json=bad)
            assert refused.status_code == 422, (bad, refused.text)
        assert http.get(f"{q}/group-limit").json()["group_limit"] == limit  # nothing written
        assert http.get(f"{q}/counts").json()["limits"]["group_limit"] == limit
        job = http.post(f"{q}/jobs", json={"name": "echo", "payload": 1, "group": "t-1"}).json()
        assert job["group"] == "t-1"
        done = http.get(f"{q}/jobs/{job['id']}", params={"wait": 10}).json()
        assert done["status"] == "completed" and done["group"] == "t-1"
        bad_group = http.post(f"{q}/jobs", json={"name": "echo", "group": "a b"})
        assert bad_group.status_code == 422, bad_group.text
        batch = http.post(f"{q}/jobs:batch", json={"jobs": [{"name": "echo", "group": "t-2"}]})
        assert batch.status_code in (200, 201), batch.text
        assert http.delete(f"{q}/group-limit").json() == {"queue": "default", "group_limit": None}
