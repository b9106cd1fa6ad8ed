"""What a worker logs: failed attempts, a graceful stop's progress, and a backend outage (once
when it starts, once when it ends, with backoff in between)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import pytest

from redkeep.queue import Job, RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient
from tests.queue.conftest import running, wait_status, wait_until

LOGGER = "redkeep.queue.worker"


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


async def test_each_failed_attempt_is_logged_at_warning(
    make_queue: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    q = await make_queue()

    def boom(job: Job) -> None:
        raise KeyError("missing-field")

    job = await q.enqueue("boom", max_attempts=2, backoff=0)
    async with running(q, {"boom": boom}):
        await wait_status(q, job.id, "failed")
    records = [r for r in caplog.records if r.name == LOGGER and job.id in r.getMessage()]
    assert len(records) == 2 and all(r.levelno == logging.WARNING for r in records)
    first, last = (r.getMessage() for r in records)
    assert "'boom'" in first and "attempt 1 of 2" in first and "KeyError" in first
    assert "retry in" in first
    assert "attempt 2 of 2" in last and "no retry" in last
    fields = vars(records[1])
    assert (fields["job_id"], fields["handler"], fields["attempt"], fields["error_type"]) == (
        job.id, "boom", 2, "KeyError",
    )  # fmt: skip


async def test_graceful_stop_logs_its_progress_at_info(
    make_queue: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    q = await make_queue()
    started = asyncio.Event()

    async def slow(job: Job) -> None:
        started.set()
        await asyncio.sleep(30)

    job = await q.enqueue("slow")
    worker = Worker(q, {"slow": slow}, grace_period=0.2, handle_signals=False)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 10)
    worker.stop()
    await asyncio.wait_for(task, 20)
    lines = _messages(caplog, logging.INFO)
    expected = [
        "stop requested",
        "stopping: 1 jobs finishing (grace period 0.2 s)",
        f"grace period over: releasing 1 unfinished jobs ({job.id})",
        "stopped",
    ]
    found = [next((i for i, line in enumerate(lines) if e in line), -1) for e in expected]
    assert -1 not in found and found == sorted(found), lines


async def test_outage_is_logged_once_when_lost_and_once_when_back(
    redis_server_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13 repro: a worker logged ``wait failed`` twice a second during an outage."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    server = redis_server_factory()
    client = MuxClient(server.url)
    q = RedisJobQueue(client, "outage", key_prefix=f"rkt:{uuid.uuid4().hex[:12]}")
    try:
        async with running(q, {"x": lambda job: "ok"}, concurrency=1):
            await asyncio.sleep(0.2)  # idle, blocked on the wake-up marker
            server.kill()
            await wait_until(lambda: _logged(caplog, "failing"), timeout=20)
            outage_start = time.monotonic()
            await asyncio.sleep(4.0)  # the outage lasts: nothing more at WARNING
            failed_calls = sum("failed:" in m for m in _messages(caplog, logging.DEBUG))
            seconds = time.monotonic() - outage_start
            server.start()
            job = await q.enqueue("x")
            assert (await wait_status(q, job.id, "completed", timeout=20)).result == "ok"
            await wait_until(lambda: _logged(caplog, "is back"), timeout=10)
    finally:
        await client.close()
    warnings = _messages(caplog, logging.WARNING)
    assert "the queue backend is failing" in warnings[0], warnings
    # A second line only if the error changes (e.g. while the server restarts), never per call.
    assert len(warnings) <= 2, warnings
    assert 2 <= failed_calls <= 12, f"{failed_calls} attempts in {seconds:.1f} s: no backoff"
    back = [m for m in _messages(caplog, logging.INFO) if "is back" in m]
    assert len(back) == 1 and "failed calls" in back[0]


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records if r.name == LOGGER)
