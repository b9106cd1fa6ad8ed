"""``redkeep schedules ...`` and ``redkeep events`` against the shared Redis."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from redkeep.cli import app
from redkeep.cli.exits import ExitCode
from redkeep.queue import RedisJobQueue
from redkeep.redis.mux import MuxClient


@pytest.fixture
def cli(redis_url: str, prefix: str) -> Iterator[Any]:
    runner = CliRunner()
    env = {"REDKEEP_REDIS_URL": redis_url, "REDKEEP_KEY_PREFIX": prefix, "REDKEEP_BACKEND": "auto"}

    def invoke(*args: str) -> Any:
        return runner.invoke(app, list(args), env=env)

    yield invoke


def _seed(redis_url: str, prefix: str) -> str:
    async def main() -> str:
        client = MuxClient(redis_url)
        try:
            q = RedisJobQueue(client, "default", key_prefix=prefix)
            await q.schedule("hourly", "report", {"k": 1}, cron="0 * * * *")
            job = await q.enqueue("x", 1)
            await q.cancel(job.id)
            return job.id
        finally:
            await client.close()

    return asyncio.run(main())


def test_schedules_commands(cli: Any, redis_url: str, prefix: str) -> None:
    _seed(redis_url, prefix)
    listed = cli("schedules", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [s["id"] for s in orjson.loads(listed.output)["schedules"]] == ["hourly"]
    shown = orjson.loads(cli("schedules", "show", "hourly", "--json").output)
    assert shown["cron"] == "0 * * * *" and shown["payload"] == {"k": 1}
    assert cli("schedules", "pause", "hourly").exit_code == 0
    assert orjson.loads(cli("schedules", "show", "hourly", "--json").output)["paused"] is True
    assert cli("schedules", "resume", "hourly").exit_code == 0
    assert cli("schedules", "delete", "hourly", "--yes").exit_code == 0
    missing = cli("schedules", "show", "hourly")
    assert missing.exit_code != 0 and "no schedule 'hourly'" in missing.output


def test_events_command_prints_stored_events(cli: Any, redis_url: str, prefix: str) -> None:
    job_id = _seed(redis_url, prefix)
    result = cli("events", "default", "--json")
    assert result.exit_code == 0, result.output
    events = [orjson.loads(line) for line in result.output.splitlines() if line.strip()]
    assert [(e["job_id"], e["event"]) for e in events] == [
        (job_id, "enqueued"),
        (job_id, "cancelled"),
    ]
    bad = cli("events", "default", "--since", "nonsense")
    assert bad.exit_code == 2 and "since must be an event id" in bad.output


def _enqueue(redis_url: str, prefix: str) -> str:
    async def main() -> str:
        client = MuxClient(redis_url)
        try:
            return (await RedisJobQueue(client, "default", key_prefix=prefix).enqueue("y", 2)).id
        finally:
            await client.close()

    return asyncio.run(main())


def _stream_id(text: str) -> tuple[int, ...]:
    return tuple(map(int, text.split("-")))


def test_events_follow_prints_new_events_as_they_happen(redis_url: str, prefix: str) -> None:
    job_id = _seed(redis_url, prefix)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDKEEP_", "UPSTASH_"))}
    env.update(REDKEEP_REDIS_URL=redis_url, REDKEEP_KEY_PREFIX=prefix, PYTHONUNBUFFERED="1")
    # Ctrl-C as in a terminal: a test run started in the background (`make test &`, nohup)
    # ignores SIGINT, and a child inherits that; Python then never raises KeyboardInterrupt.
    proc = subprocess.Popen(
        [sys.executable, "-m", "redkeep", "events", "default", "--follow", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)
    reader.start()

    def next_event() -> Any:
        line = lines.get(timeout=30)
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            raise AssertionError(f"not an event line: {line!r}") from None

    try:
        stored = [next_event() for _ in range(2)]
        assert [(e["job_id"], e["event"]) for e in stored] == [
            (job_id, "enqueued"),
            (job_id, "cancelled"),
        ]
        new_id = _enqueue(redis_url, prefix)  # printed while the command keeps running
        new = next_event()
        assert (new["job_id"], new["event"]) == (new_id, "enqueued")
        assert _stream_id(new["id"]) > _stream_id(stored[-1]["id"])
        assert proc.poll() is None  # still following
        proc.send_signal(signal.SIGINT)  # Ctrl-C ends it
        assert proc.wait(15) == ExitCode.INTERRUPTED
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
