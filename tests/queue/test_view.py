"""One job view: the HTTP API, `redkeep jobs show --json` and snapshots show the same JSON."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from redkeep.cli import app as cli_app
from redkeep.config import Settings
from redkeep.migrate.snapshot import JobRecord, decode_record, encode_record
from redkeep.queue.backoff import Backoff
from redkeep.queue.job import Job, JobFailure, JobStatus
from redkeep.queue.view import JOB_FIELDS, job_from_dict, job_to_dict
from redkeep.services import create_services
from redkeep.web.app import create_app

FAILED = Job(
    id="broken-1",
    name="send",
    queue="mail",
    payload={"to": "ada@example.com", "n": [1, 2]},
    status=JobStatus.FAILED,
    attempts=3,
    max_attempts=3,
    created_at=1_700_000_000.5,
    started_at=1_700_000_001.0,
    finished_at=1_700_000_002.25,
    run_at=1_700_000_000.5,
    error=JobFailure("ValueError", "bad address", "Traceback (most recent call last):\n..."),
    worker_id="host:1:abc",
    timeout=30.0,
    backoff=Backoff(2.0, 60.0, "fixed", jitter=False),
    headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
)


async def _through_http(settings: Settings) -> tuple[Job, dict[str, Any], dict[str, Any]]:
    async with create_services(settings) as services:
        assert await services.queue("mail").restore_job(FAILED)
        stored = await services.queue("mail").get_job(FAILED.id)
        assert stored is not None
        app = create_app(services)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
        ) as client:
            over_http = (await client.get(f"/v1/queues/mail/jobs/{FAILED.id}")).json()
            listed = (await client.get("/v1/queues/mail/jobs?status=failed")).json()["jobs"]
    return stored, over_http, listed[0]


def test_http_cli_and_snapshot_show_the_same_job(redis_url: str, prefix: str) -> None:
    settings = Settings(backend="redis", redis_url=redis_url, key_prefix=prefix)
    stored, over_http, listed = asyncio.run(_through_http(settings))
    env = {"REDKEEP_REDIS_URL": redis_url, "REDKEEP_KEY_PREFIX": prefix}
    shown = CliRunner().invoke(
        cli_app, ["jobs", "show", FAILED.id, "-q", "mail", "--json"], env=env
    )
    assert shown.exit_code == 0, shown.output
    from_cli = orjson.loads(shown.stdout)
    in_snapshot = orjson.loads(encode_record(JobRecord("mail", stored)))["job"]

    assert over_http == from_cli == in_snapshot == listed
    assert list(over_http) == list(JOB_FIELDS)
    assert over_http["error"] == {
        "type": "ValueError",
        "message": "bad address",
        "traceback": "Traceback (most recent call last):\n...",
    }
    assert over_http["payload_error"] is None
    assert over_http["backoff"] == {
        "base": 2.0,
        "max_delay": 60.0,
        "kind": "fixed",
        "jitter": False,
    }
    assert over_http["headers"] == FAILED.headers
    assert "token" not in over_http


def test_the_view_reads_back_to_the_same_job() -> None:
    view = orjson.loads(orjson.dumps(job_to_dict(FAILED)))
    assert job_from_dict(view, "mail") == FAILED
    record = decode_record(orjson.loads(encode_record(JobRecord("mail", FAILED))))
    assert isinstance(record, JobRecord) and record.job == FAILED


def test_snapshots_written_before_the_one_view_still_load() -> None:
    old = {
        "id": "j1",
        "name": "send",
        "payload": None,
        "status": "failed",
        "error": {"type": "E", "message": "m", "tb": "trace"},
        "backoff": [1.0, 10.0, "exponential", True],
    }
    job = job_from_dict(old, "mail")
    assert job.headers == {}
    assert job.error == JobFailure("E", "m", "trace")
    assert job.backoff == Backoff(1.0, 10.0, "exponential", True)


def test_non_json_values_keep_their_type_through_the_view() -> None:
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    job = Job(id="j", name="n", queue="q", payload={"at": when, "raw": b"\x00\x01", "t": (1, 2)})
    view = orjson.loads(orjson.dumps(job_to_dict(job)))
    assert view["payload"]["at"] == {"__rk__": "dt", "v": "2024-05-06T07:08:09+00:00"}
    assert job_from_dict(view, "q").payload == job.payload


def test_a_job_whose_payload_was_unreadable_is_not_restored() -> None:
    view = job_to_dict(Job(id="j", name="n", queue="q", payload_error="bad JSON", created_at=1.0))
    assert view["payload_error"] == "bad JSON"
    with pytest.raises(ValueError, match="unreadable"):
        job_from_dict(dict(view), "q")


def test_bad_headers_in_a_view_are_named() -> None:
    view = orjson.loads(orjson.dumps(job_to_dict(FAILED)))
    with pytest.raises(ValueError, match="job field 'headers' is invalid"):
        job_from_dict({**view, "headers": {"traceparent": 7}}, "mail")
