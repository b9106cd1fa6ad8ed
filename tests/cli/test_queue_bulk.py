"""``redkeep queues retry-failed|cancel-waiting`` against the shared Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from redkeep.cli import app as root
from redkeep.queue.job import Job, JobStatus
from redkeep.queue.redis import RedisJobQueue
from redkeep.redis.mux import MuxClient


@pytest.fixture
def cli(redis_url: str, prefix: str) -> Iterator[Any]:
    runner = CliRunner()
    env = {"REDKEEP_REDIS_URL": redis_url, "REDKEEP_KEY_PREFIX": prefix, "REDKEEP_BACKEND": "auto"}

    def invoke(*args: str, input: str | None = None) -> Any:
        return runner.invoke(root, ["queues", *args], env=env, input=input)

    yield invoke


async def _seed(redis_url: str, prefix: str) -> None:
    client = MuxClient(redis_url)
    try:
        q = RedisJobQueue(client, "mail", key_prefix=prefix)
        now = time.time()
        for i in range(6):
            job = Job(
                id=f"f{i}", name="send" if i % 2 else "other", queue="mail", payload=i,
                status=JobStatus.FAILED, attempts=3, max_attempts=3, created_at=now,
                finished_at=now + i,
            )  # fmt: skip
            assert await q.restore_job(job)
        for i in range(4):
            await q.enqueue("send" if i % 2 else "other", i, delay=3600 if i < 2 else None)
    finally:
        await client.close()


async def _counts(redis_url: str, prefix: str) -> dict[str, int]:
    client = MuxClient(redis_url)
    try:
        return await RedisJobQueue(client, "mail", key_prefix=prefix).counts()
    finally:
        await client.close()


def test_retry_failed_and_cancel_waiting(cli: Any, redis_url: str, prefix: str) -> None:
    asyncio.run(_seed(redis_url, prefix))
    refused = cli("retry-failed", "mail", input="n\n")
    assert refused.exit_code == 4
    assert asyncio.run(_counts(redis_url, prefix))["failed"] == 6

    result = cli("retry-failed", "mail", "--name", "send", "--limit", "2", "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == {"queue": "mail", "retried": 2}
    result = cli("retry-failed", "mail", input="y\n")
    assert result.exit_code == 0, result.output
    assert "retried 4 job(s)" in result.stdout
    counts = asyncio.run(_counts(redis_url, prefix))
    assert (counts["failed"], counts["waiting"], counts["delayed"]) == (0, 8, 2)

    result = cli("cancel-waiting", "mail", "--name", "other", "--yes", "--json")
    assert orjson.loads(result.stdout) == {"queue": "mail", "cancelled": 5}
    result = cli("cancel-waiting", "mail", "--yes")
    assert result.exit_code == 0 and "cancelled 5 job(s)" in result.stdout
    counts = asyncio.run(_counts(redis_url, prefix))
    assert (counts["waiting"], counts["delayed"], counts["cancelled"]) == (0, 0, 10)


def test_bad_arguments_exit_2(cli: Any) -> None:
    assert cli("retry-failed", "mail", "--limit", "0", "--yes").exit_code == 2
    assert cli("cancel-waiting", "bad/name", "--yes").exit_code == 2
    assert cli("cancel-waiting", "mail", "--name", "", "--yes").exit_code == 2


async def _dedup_job(redis_url: str, prefix: str) -> str:
    client = MuxClient(redis_url)
    try:
        q = RedisJobQueue(client, "mail", key_prefix=prefix)
        return (await q.enqueue("send", 1, dedup_key="user-9")).id
    finally:
        await client.close()


def test_jobs_show_has_the_dedup_key(redis_url: str, prefix: str) -> None:
    job_id = asyncio.run(_dedup_job(redis_url, prefix))
    env = {"REDKEEP_REDIS_URL": redis_url, "REDKEEP_KEY_PREFIX": prefix, "REDKEEP_BACKEND": "auto"}
    runner = CliRunner()
    shown = runner.invoke(root, ["jobs", "show", job_id, "-q", "mail"], env=env)
    assert shown.exit_code == 0 and "user-9" in shown.stdout
    as_json = runner.invoke(root, ["jobs", "show", job_id, "-q", "mail", "--json"], env=env)
    assert orjson.loads(as_json.stdout)["dedup_key"] == "user-9"
