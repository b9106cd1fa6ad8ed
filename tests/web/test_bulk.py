"""HTTP: dedup/debounce on enqueue, ``jobs:batch`` (all or nothing), ``failed:retry`` and
``waiting:cancel``; a real uvicorn on the shared Redis (unique prefix per test)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.web.server import TOKEN, ServerThread, redis_settings

from redkeep.examples import handlers
from redkeep.queue.redis import RedisJobQueue
from redkeep.queue.view import job_from_dict
from redkeep.redis.mux import MuxClient

AUTH = {"Authorization": f"Bearer {TOKEN}"}
Q = "/v1/queues/bulkq"  # no worker runs this queue


@pytest.fixture
def client(serve: Callable[..., ServerThread], redis_url: str, prefix: str) -> Iterator[Any]:
    server = serve(redis_settings(redis_url, prefix), handlers)
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as c:
        yield c


def _counts(client: httpx.Client) -> dict[str, int]:
    counts: dict[str, int] = client.get(f"{Q}/counts").json()["counts"]
    return counts


def test_enqueue_with_dedup_key_returns_the_same_job(client: httpx.Client) -> None:
    first = client.post(f"{Q}/jobs", json={"name": "a", "payload": 1, "dedup_key": "k"})
    assert first.status_code == 201 and first.json()["dedup_key"] == "k"
    again = client.post(
        f"{Q}/jobs", json={"name": "a", "payload": 2, "dedup_key": "k", "dedup_ttl": 30}
    )
    assert again.json()["id"] == first.json()["id"] and again.json()["payload"] == 1
    bounced = client.post(f"{Q}/jobs", json={"name": "a", "dedup_key": "d", "debounce": 60})
    assert bounced.json()["status"] == "delayed"
    assert _counts(client)["waiting"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dedup_key": ""}, "dedup_key"),
        ({"dedup_key": "k" * 201}, "dedup_key"),
        ({"debounce": 5}, "debounce"),
        ({"dedup_ttl": 5}, "dedup_ttl"),
        ({"dedup_key": "k", "dedup_ttl": 0}, "dedup_ttl"),
        ({"dedup_key": "k", "debounce": -1}, "debounce"),
        ({"dedup_key": "k", "debounce": 1, "delay": 5}, "debounce"),
        ({"dedup_key": "k", "dedup_ttl": 1, "debounce": 1}, "debounce"),
    ],
)
def test_bad_dedup_fields_are_422(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    r = client.post(f"{Q}/jobs", json={"name": "a", **body})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    r = client.post(f"{Q}/jobs:batch", json={"jobs": [{"name": "ok"}, {"name": "a", **body}]})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == f"jobs.1.{field}"
    assert sum(_counts(client).values()) == 0


def test_batch_enqueues_all_in_order(client: httpx.Client) -> None:
    jobs = [{"name": "a", "payload": i, "priority": i % 3} for i in range(1000)]
    jobs[5] = {"name": "a", "payload": "mine", "job_id": "given"}
    r = client.post(f"{Q}/jobs:batch", json={"jobs": jobs})
    assert r.status_code == 201, r.text
    out = r.json()["jobs"]
    assert len(out) == 1000 and out[5]["id"] == "given"
    assert [j["payload"] for j in out[:5]] == [0, 1, 2, 3, 4]
    assert _counts(client)["waiting"] == 1000


def test_batch_is_all_or_nothing(client: httpx.Client) -> None:
    too_many = client.post(f"{Q}/jobs:batch", json={"jobs": [{"name": "a"}] * 1001})
    assert too_many.status_code == 422 and too_many.json()["error"]["field"] == "jobs"
    empty = client.post(f"{Q}/jobs:batch", json={"jobs": []})
    assert empty.status_code == 422
    bad = [{"name": "a", "payload": i} for i in range(50)]
    bad[37] = {"name": "a", "priority": 10**6}
    r = client.post(f"{Q}/jobs:batch", json={"jobs": bad})
    assert r.status_code == 422 and r.json()["error"]["field"] == "jobs.37.priority"
    unknown = client.post(f"{Q}/jobs:batch", json={"jobs": [{"name": "a", "nope": 1}]})
    assert unknown.status_code == 422
    assert sum(_counts(client).values()) == 0


def test_retry_failed_and_cancel_waiting(client: httpx.Client, redis_url: str, prefix: str) -> None:
    now = time.time()
    for i in range(4):
        job = {
            "id": f"f{i}", "name": "a" if i % 2 else "b", "status": "failed", "attempts": 3,
            "max_attempts": 3, "created_at": now, "finished_at": now + i,
        }  # fmt: skip
        r = client.post(f"{Q}/jobs:batch", json={"jobs": [{"name": "w", "payload": i}]})
        assert r.status_code == 201
        _restore(redis_url, prefix, job)
    r = client.post(f"{Q}/failed:retry", json={"name": "a", "limit": 1})
    assert r.status_code == 200 and r.json() == {"queue": "bulkq", "count": 1}
    r = client.post(f"{Q}/failed:retry")
    assert r.json()["count"] == 3
    assert _counts(client)["waiting"] == 8
    r = client.post(f"{Q}/waiting:cancel", json={"name": "w"})
    assert r.json() == {"queue": "bulkq", "count": 4}
    r = client.post(f"{Q}/waiting:cancel", json={})
    assert r.json()["count"] == 4
    assert client.post(f"{Q}/failed:retry", json={"limit": 0}).status_code == 422
    assert client.post(f"{Q}/waiting:cancel", json={"name": ""}).status_code == 422
    counts = _counts(client)
    assert (counts["waiting"], counts["cancelled"]) == (0, 8)


def _restore(redis_url: str, prefix: str, job: dict[str, Any]) -> None:
    """Write a failed job with the queue API (no HTTP route writes one)."""

    async def write() -> None:
        redis = MuxClient(redis_url)
        try:
            q = RedisJobQueue(redis, "bulkq", key_prefix=prefix)
            assert await q.restore_job(job_from_dict(job, "bulkq"))
        finally:
            await redis.close()

    asyncio.run(write())
