"""HTTP: ``depends_on`` and ``on_parent_failure`` on enqueue and ``jobs:batch`` (docs/flows.md);
a real uvicorn on the shared Redis (unique prefix per test)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.web.server import TOKEN, ServerThread, redis_settings

from redkeep.examples import handlers

AUTH = {"Authorization": f"Bearer {TOKEN}"}
Q = "/v1/queues/flowq"  # no worker runs this queue


@pytest.fixture
def client(serve: Callable[..., ServerThread], redis_url: str, prefix: str) -> Iterator[Any]:
    server = serve(redis_settings(redis_url, prefix), handlers)
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as c:
        yield c


def test_enqueue_with_depends_on_is_blocked(client: httpx.Client) -> None:
    parent = client.post(f"{Q}/jobs", json={"name": "a", "job_id": "p1"})
    assert parent.status_code == 201, parent.text
    r = client.post(
        f"{Q}/jobs", json={"name": "a", "depends_on": ["p1"], "on_parent_failure": "cancel"}
    )
    assert r.status_code == 201, r.text
    child = r.json()
    assert child["status"] == "blocked"
    assert (child["depends_on"], child["on_parent_failure"]) == (["p1"], "cancel")
    counts = client.get(f"{Q}/counts").json()["counts"]
    assert (counts["blocked"], counts["waiting"]) == (1, 1)
    listed = client.get(f"{Q}/jobs", params={"status": "blocked"}).json()["jobs"]
    assert [j["id"] for j in listed] == [child["id"]]
    assert client.post(f"{Q}/jobs/p1/cancel").json()["cancelled"] is True
    assert client.get(f"{Q}/jobs/{child['id']}").json()["status"] == "cancelled"


def test_batch_child_may_depend_on_an_earlier_job(client: httpx.Client) -> None:
    jobs = [{"name": "a", "job_id": "first"}, {"name": "a", "depends_on": ["first"]}]
    r = client.post(f"{Q}/jobs:batch", json={"jobs": jobs})
    assert r.status_code == 201, r.text
    assert [j["status"] for j in r.json()["jobs"]] == ["waiting", "blocked"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"depends_on": ["bad id"]}, "depends_on.0"),
        ({"depends_on": ["x"], "on_parent_failure": "retry"}, "on_parent_failure"),
    ],
)
def test_bad_flow_fields_are_422(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    r = client.post(f"{Q}/jobs", json={"name": "a", **body})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


def test_unknown_parent_is_422_and_writes_nothing(client: httpx.Client) -> None:
    r = client.post(f"{Q}/jobs", json={"name": "a", "depends_on": ["ghost"]})
    assert r.status_code == 422 and "ghost" in r.json()["error"]["message"]
    jobs = [{"name": "a", "job_id": "n1"}, {"name": "a", "depends_on": ["ghost"]}]
    r = client.post(f"{Q}/jobs:batch", json={"jobs": jobs})
    assert r.status_code == 422, r.text
    assert sum(client.get(f"{Q}/counts").json()["counts"].values()) == 0
