"""Schedules, long-poll, Server-Sent Events, a job's events, throughput and the events switch
over HTTP (a real uvicorn server on Redis, with a worker inside)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from tests.web.server import TOKEN, ServerThread, redis_settings

from redkeep.queue import Job

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _slow(job: Job) -> str:
    time.sleep(0.3)
    return "slow done"


def test_schedule_routes(serve: Callable[..., ServerThread], redis_url: str, prefix: str) -> None:
    server = serve(redis_settings(redis_url, prefix))
    base = f"{server.url}/v1/queues/reports/schedules"
    with httpx.Client(headers=AUTH, timeout=10) as http:
        body = {"name": "report", "cron": "0 3 * * *", "tz": "Europe/Berlin", "payload": {"k": 1}}
        r = http.put(f"{base}/nightly", json=body)
        assert r.status_code == 200, r.text
        view = r.json()
        assert view["id"] == "nightly" and view["next_run_at"] > time.time()
        assert view["payload"] == {"k": 1} and view["paused"] is False
        assert http.get(f"{base}/nightly").json() == view
        assert [s["id"] for s in http.get(base).json()["schedules"]] == ["nightly"]
        assert http.post(f"{base}/nightly/pause").json()["paused"] is True
        resumed = http.post(f"{base}/nightly/resume").json()
        assert resumed["paused"] is False and resumed["next_run_at"] is not None
        bad = http.put(f"{base}/x", json={"name": "r", "cron": "99 * * * *"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "cron"
        both = http.put(f"{base}/x", json={"name": "r", "cron": "* * * * *", "every": 5})
        assert both.status_code == 422 and both.json()["error"]["field"] == "cron/every"
        zone = http.put(f"{base}/x", json={"name": "r", "every": 5, "tz": "Nowhere/City"})
        assert zone.status_code == 422 and zone.json()["error"]["field"] == "tz"
        assert http.get(f"{base}/x").status_code == 404
        assert http.delete(f"{base}/nightly").json() == {"id": "nightly", "done": True}
        assert http.delete(f"{base}/nightly").status_code == 404


def test_long_poll_events_and_throughput(
    serve: Callable[..., ServerThread], redis_url: str, prefix: str
) -> None:
    server = serve(redis_settings(redis_url, prefix), {"slow": _slow})
    q = f"{server.url}/v1/queues/default"
    with httpx.Client(headers=AUTH, timeout=20) as http:
        with http.stream("GET", f"{q}/events") as stream:
            lines = stream.iter_lines()
            assert next(lines) == ": connected"
            job = http.post(f"{q}/jobs", json={"name": "slow"}).json()
            started = time.monotonic()
            done = http.get(f"{q}/jobs/{job['id']}", params={"wait": 10}).json()
            assert done["status"] == "completed" and done["result"] == "slow done"
            assert time.monotonic() - started < 5
            frames: list[dict[str, str]] = []
            frame: dict[str, str] = {}
            for line in lines:
                if not line:
                    if frame:
                        frames.append(frame)
                    frame = {}
                    if frames and frames[-1].get("event") == "completed":
                        break
                elif not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    frame[key] = value
        assert [f["event"] for f in frames] == ["enqueued", "active", "completed"]
        # reconnecting with Last-Event-ID resumes right after that event
        with http.stream("GET", f"{q}/events",
                         headers={"Last-Event-ID": frames[0]["id"]}) as again:  # fmt: skip
            resumed: list[str] = []
            for line in again.iter_lines():
                if line.startswith("id: "):
                    resumed.append(line[4:])
                if len(resumed) == 2:
                    break
        assert resumed == [frames[1]["id"], frames[2]["id"]]
        timeline = http.get(f"{q}/jobs/{job['id']}/events").json()["events"]
        assert [e["event"] for e in timeline] == ["enqueued", "active", "completed"]
        minutes = http.get(f"{q}/throughput", params={"minutes": 5}).json()["minutes"]
        assert len(minutes) == 5 and minutes[-1]["completed"] >= 1
        waiting = http.post(f"{q}/jobs", json={"name": "none", "delay": 60}).json()
        still = http.get(f"{q}/jobs/{waiting['id']}", params={"wait": 0.3}).json()
        assert still["status"] == "delayed"
        assert http.get(f"{q}/jobs/nope", params={"wait": 0.3}).status_code == 404
        too_long = http.get(f"{q}/jobs/{waiting['id']}", params={"wait": 61})
        assert too_long.status_code == 400 and too_long.json()["error"]["field"] == "wait"
        off = http.put(f"{q}/events/settings", json={"enabled": False}).json()
        assert off == {"queue": "default", "enabled": False, "max_events": 10000}
        assert http.get(f"{q}/events/settings").json()["enabled"] is False
