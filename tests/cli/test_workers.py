"""``redkeep workers``: the registry of a real worker running on the shared Redis."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from redkeep.cli import app
from redkeep.queue import RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient


@pytest.fixture
def cli(redis_url: str, prefix: str) -> Iterator[Any]:
    runner = CliRunner()
    env = {"REDKEEP_REDIS_URL": redis_url, "REDKEEP_KEY_PREFIX": prefix, "REDKEEP_BACKEND": "auto"}
    env["COLUMNS"] = "200"  # one line per worker in the table
    yield lambda *args: runner.invoke(app, list(args), env=env)


@pytest.fixture
def worker(redis_url: str, prefix: str) -> Iterator[Worker]:
    """A worker on queues 'mail' and 'reports' in a thread with its own loop."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        client = MuxClient(redis_url)
        queues = [RedisJobQueue(client, n, key_prefix=prefix) for n in ("mail", "reports")]
        w = box["worker"] = Worker(queues, {}, handle_signals=False, concurrency=4)
        box["loop"] = asyncio.get_running_loop()
        task = asyncio.create_task(w.run())
        while not await queues[0].worker_registry().list():  # registered
            await asyncio.sleep(0.01)
        ready.set()
        await task
        await client.close()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield box["worker"]
    box["loop"].call_soon_threadsafe(box["worker"].stop)
    thread.join(10)


def test_workers_lists_a_running_worker(cli: Any, worker: Worker, prefix: str) -> None:
    result = cli("workers", "--json")
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert data["key_prefix"] == prefix
    [row] = data["workers"]
    assert row["id"] == worker.id
    assert (row["host"], row["pid"]) == (socket.gethostname(), os.getpid())
    assert (row["queues"], row["concurrency"], row["active"]) == (["mail", "reports"], 4, 0)
    table = cli("workers")
    assert table.exit_code == 0
    assert worker.id in table.stdout and "mail, reports" in table.stdout


def test_no_workers(cli: Any) -> None:
    result = cli("workers")
    assert result.exit_code == 0
    assert "no live workers under key prefix" in result.stdout
