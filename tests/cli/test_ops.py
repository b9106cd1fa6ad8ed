"""Operations commands (queues, jobs, cache, config) against the shared Redis, via the real CLI."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from redkeep.cache.redis import RedisCache
from redkeep.cli import app
from redkeep.queue.job import Job, JobFailure, JobStatus
from redkeep.queue.redis import RedisJobQueue
from redkeep.redis.mux import MuxClient


@pytest.fixture
def cli(redis_url: str, prefix: str) -> Iterator[Any]:
    runner = CliRunner()
    env = {"REDKEEP_REDIS_URL": redis_url, "REDKEEP_KEY_PREFIX": prefix, "REDKEEP_BACKEND": "auto"}

    def invoke(*args: str, input: str | None = None, extra: dict[str, str] | None = None) -> Any:
        return runner.invoke(app, list(args), env={**env, **(extra or {})}, input=input)

    yield invoke


def _json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


async def _seed(redis_url: str, prefix: str) -> None:
    client = MuxClient(redis_url)
    try:
        q = RedisJobQueue(client, "mail", key_prefix=prefix)
        await q.enqueue("send", {"n": 1}, job_id="low", priority=0)
        await q.enqueue("send", {"n": 2}, job_id="high", priority=10)
        await q.enqueue("send", {"n": 3}, job_id="later", delay=3600)
        failed = Job(
            id="broken",
            name="send",
            queue="mail",
            payload={"n": 4},
            status=JobStatus.FAILED,
            attempts=3,
            max_attempts=3,
            created_at=time.time() - 60,
            finished_at=time.time() - 10,
            error=JobFailure("ValueError", "bad address", "Traceback ...\nValueError"),
            headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        )
        assert await q.restore_job(failed)
        other = RedisJobQueue(client, "reports", key_prefix=prefix)
        await other.enqueue("build", None, job_id="r1")
    finally:
        await client.close()


def test_queues_shows_counts_and_oldest_waiting(cli: Any, redis_url: str, prefix: str) -> None:
    asyncio.run(_seed(redis_url, prefix))
    data = _json(cli("queues", "--json"))
    assert data["key_prefix"] == prefix
    rows = {row["queue"]: row for row in data["queues"]}
    assert set(rows) == {"mail", "reports"}
    mail = rows["mail"]["counts"]
    assert (mail["waiting"], mail["delayed"], mail["failed"], mail["active"]) == (2, 1, 1, 0)
    assert rows["mail"]["oldest_waiting_seconds"] >= 0
    table = cli("queues")
    assert table.exit_code == 0
    assert "mail" in table.stdout and "reports" in table.stdout
    only = _json(cli("queues", "--json", "-q", "reports"))
    assert [row["queue"] for row in only["queues"]] == ["reports"]


def test_jobs_list_show_retry_cancel_purge(cli: Any, redis_url: str, prefix: str) -> None:
    asyncio.run(_seed(redis_url, prefix))
    listed = _json(cli("jobs", "list", "waiting", "-q", "mail", "--json"))
    assert [j["id"] for j in listed["jobs"]] == ["high", "low"]

    shown = _json(cli("jobs", "show", "broken", "-q", "mail", "--json"))
    assert shown["status"] == "failed" and shown["attempts"] == 3
    assert shown["error"]["message"] == "bad address"
    assert shown["headers"]["traceparent"].startswith("00-0af76519")
    human = cli("jobs", "show", "broken", "-q", "mail")
    assert human.exit_code == 0 and "bad address" in human.stdout
    assert "header traceparent" in human.stdout

    missing = cli("jobs", "show", "nope", "-q", "mail")
    assert missing.exit_code == 3 and "no job 'nope'" in missing.stderr

    assert cli("jobs", "retry", "broken", "-q", "mail").exit_code == 0
    again = _json(cli("jobs", "show", "broken", "-q", "mail", "--json"))
    assert again["status"] == "waiting" and again["attempts"] == 0
    refused = cli("jobs", "retry", "broken", "-q", "mail")
    assert refused.exit_code == 4 and "only failed jobs" in refused.stderr

    assert cli("jobs", "cancel", "later", "-q", "mail").exit_code == 0
    assert _json(cli("jobs", "show", "later", "-q", "mail", "--json"))["status"] == "cancelled"
    assert cli("jobs", "cancel", "later", "-q", "mail").exit_code == 4

    declined = cli("jobs", "purge", "cancelled", "-q", "mail", input="n\n")
    assert declined.exit_code == 4
    purged = _json(cli("jobs", "purge", "cancelled", "-q", "mail", "--yes", "--json"))
    assert purged == {"queue": "mail", "status": "cancelled", "purged": 1}
    assert cli("jobs", "show", "later", "-q", "mail").exit_code == 3

    bad = cli("jobs", "list", "sleeping", "-q", "mail")
    assert bad.exit_code == 2 and "unknown status 'sleeping'" in bad.stderr
    assert cli("jobs", "purge", "waiting", "-q", "mail", "--yes").exit_code == 2


def test_cache_commands(cli: Any, redis_url: str, prefix: str) -> None:
    assert (
        cli(
            "cache", "set", "sessions", "user:1", '{"name": "Ada", "n": [1, 2]}', "--ttl", "60"
        ).exit_code
        == 0
    )
    got = _json(cli("cache", "get", "sessions", "user:1", "--json"))
    assert got["value"] == {"name": "Ada", "n": [1, 2]}
    assert 55 < got["ttl"] <= 60

    async def read() -> Any:
        client = MuxClient(redis_url)
        try:
            cache = RedisCache(client, "sessions", key_prefix=prefix)
            return await cache.get("user:1"), await cache.get("when")
        finally:
            await client.close()

    # a tagged value sets a real datetime, readable through the Python API
    tagged = '{"__rk__": "dt", "v": "2024-02-03T04:05:06"}'
    assert cli("cache", "set", "sessions", "when", tagged).exit_code == 0
    value, when = asyncio.run(read())
    assert value == {"name": "Ada", "n": [1, 2]}
    assert when.isoformat() == "2024-02-03T04:05:06"

    bad = cli("cache", "set", "sessions", "raw", "not json")
    assert bad.exit_code == 2 and "--string" in bad.stderr
    assert cli("cache", "set", "sessions", "raw", "not json", "--string").exit_code == 0
    assert _json(cli("cache", "get", "sessions", "raw", "--json"))["value"] == "not json"
    assert cli("cache", "set", "sessions", "x", "1", "--ttl", "0").exit_code == 2

    missing = cli("cache", "get", "sessions", "absent")
    assert missing.exit_code == 3 and "no key 'absent'" in missing.stderr

    stats = _json(cli("cache", "stats", "sessions", "--json"))
    assert (stats["entries"], stats["with_ttl"], stats["without_ttl"]) == (3, 1, 2)
    assert stats["value_bytes"] > 0

    assert cli("cache", "delete", "sessions", "raw").exit_code == 0
    assert cli("cache", "delete", "sessions", "raw").exit_code == 3
    cleared = _json(cli("cache", "clear", "sessions", "--yes", "--json"))
    assert cleared == {"cache": "sessions", "removed": 2}
    assert _json(cli("cache", "stats", "sessions", "--json"))["entries"] == 0
    assert cli("cache", "get", "bad name!", "k").exit_code == 2


def test_config_is_redacted(cli: Any) -> None:
    secret = "pw-Xy7-not-for-logs"
    extra = {
        "REDKEEP_REDIS_URL": f"redis://app:{secret}@127.0.0.1:6379/0",
        "REDKEEP_API_TOKEN": "tok-abcdef-123",
        "REDKEEP_COMMAND_TIMEOUT": "1.5",
    }
    data = _json(cli("config", "--json", extra=extra))
    assert data["redis_url"] == "redis://app:***@127.0.0.1:6379/0"
    assert data["api_token"] == "***"
    assert data["command_timeout"] == 1.5
    table = cli("config", extra=extra)
    assert table.exit_code == 0
    assert "REDKEEP_COMMAND_TIMEOUT" in table.stdout and "set" in table.stdout
    for result in (table,):
        assert secret not in result.output and "tok-abcdef-123" not in result.output

    bad = cli("config", extra={"REDKEEP_COMMAND_TIMEOUT": "-1"})
    assert bad.exit_code == 2 and "REDKEEP_COMMAND_TIMEOUT" in bad.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_redis_is_one_line_without_secret(cli: Any) -> None:
    secret = "hunter2-secret"
    url = f"redis://:{secret}@127.0.0.1:{_closed_port()}/0"
    result = cli(
        "queues",
        extra={
            "REDKEEP_REDIS_URL": url,
            "REDKEEP_CONNECT_TIMEOUT": "0.5",
            "REDKEEP_RETRY_ATTEMPTS": "0",
        },
    )
    assert result.exit_code == 1
    assert "BackendUnavailable" in result.stderr
    assert secret not in result.output
    assert "Traceback" not in result.output


def test_memory_backend_is_refused(cli: Any) -> None:
    result = cli("queues", extra={"REDKEEP_REDIS_URL": "", "REDKEEP_BACKEND": "memory"})
    assert result.exit_code == 2  # fixed by the settings, not by retrying
    assert "REDKEEP_REDIS_URL" in result.stderr


def test_installed_command_runs_as_a_subprocess(redis_url: str, prefix: str) -> None:
    """`python -m redkeep queues --json` in a real process (entry point, env, exit code)."""
    import os
    import subprocess
    import sys

    asyncio.run(_seed(redis_url, prefix))
    env = {**os.environ, "REDKEEP_REDIS_URL": redis_url, "REDKEEP_KEY_PREFIX": prefix}
    done = subprocess.run(
        [sys.executable, "-m", "redkeep", "queues", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    names = [row["queue"] for row in orjson.loads(done.stdout)["queues"]]
    assert names == ["mail", "reports"]
    missing = subprocess.run(
        [sys.executable, "-m", "redkeep", "jobs", "show", "nope", "-q", "mail"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 3 and "no job 'nope'" in missing.stderr


def test_queues_pause_and_resume(cli: Any, redis_url: str, prefix: str) -> None:
    asyncio.run(_seed(redis_url, prefix))
    assert _json(cli("queues", "pause", "mail", "--json")) == {"queue": "mail", "paused": True}
    rows = {row["queue"]: row for row in _json(cli("queues", "--json"))["queues"]}
    assert rows["mail"]["paused"] is True and rows["reports"]["paused"] is False
    assert "paused" in cli("queues").stdout
    resumed = cli("queues", "resume", "mail")
    assert resumed.exit_code == 0 and "resumed" in resumed.stdout
    assert _json(cli("queues", "--json", "-q", "mail"))["queues"][0]["paused"] is False
    assert cli("queues", "pause", "bad name!").exit_code == 2


def test_queues_rate_limit_and_group_limit(cli: Any, redis_url: str, prefix: str) -> None:
    rate = {"max_jobs": 50, "per_seconds": 1.0}
    assert _json(cli("queues", "rate-limit", "mail", "--json")) == {
        "queue": "mail", "rate_limit": None}  # fmt: skip
    assert _json(cli("queues", "rate-limit", "mail", "50", "1", "--json"))["rate_limit"] == rate
    shown = cli("queues", "rate-limit", "mail")
    assert shown.exit_code == 0 and "at most 50 job starts per 1 s" in shown.stdout
    refused = cli("queues", "rate-limit", "mail", "0", "1")
    assert refused.exit_code == 2 and "max_jobs" in refused.output
    assert _json(cli("queues", "rate-limit", "mail", "--json"))["rate_limit"] == rate
    assert _json(cli("queues", "rate-limit", "mail", "--clear", "--json"))["rate_limit"] is None
    group = {"concurrency": 2, "max_jobs": 10, "per_seconds": 60.0}
    opts = ["--concurrency", "2", "--max-jobs", "10", "--per-seconds", "60", "--json"]
    assert _json(cli("queues", "group-limit", "mail", *opts))["group_limit"] == group
    assert "every group at most 2 active jobs" in cli("queues", "group-limit", "mail").stdout
    assert cli("queues", "group-limit", "mail", "--concurrency", "0").exit_code == 2
    assert cli("queues", "rate-limit", "bad name!").exit_code == 2
    cleared = _json(cli("queues", "group-limit", "mail", "--clear", "--json"))
    assert cleared == {"queue": "mail", "group_limit": None}
