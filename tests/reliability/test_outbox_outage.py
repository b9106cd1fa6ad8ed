"""Scenario 10: enqueue outbox through a Redis outage. Four producers enqueue 200 jobs/s each
through Services with ``REDKEEP_QUEUE_OUTBOX`` while the private redis-server (AOF,
``appendfsync always``) is SIGKILLed and kept down for 10 s, then restarted. No enqueue may
fail; the jobs enqueued during the outage are held in the outbox and relayed once Redis is back.
A worker (concurrency 1, so it runs jobs in queue order) started after the restart must then run
every job exactly once, and each producer's jobs in the order that producer enqueued them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redkeep.config import Settings
from redkeep.queue import Job, JobStatus
from redkeep.services import Services
from tests.reliability.harness import Deadline, Figures, Latencies, wait_until
from tests.reliability.jobs import all_finished

pytestmark = pytest.mark.slow

PRODUCERS = 4
RATE = 200.0  # jobs per second per producer
BEFORE = 2.0  # seconds of load before the kill
DOWN = 10.0  # seconds Redis stays down
AFTER = 3.0  # seconds of load after the restart
DRAIN = 90.0


@pytest.mark.timeout(BEFORE + DOWN + AFTER + DRAIN + 60)
async def test_redis_down_10s_under_load_loses_and_duplicates_nothing(
    redis_server_factory: Callable[..., Any],
    figures: Callable[[str, str], Figures],
    tmp_path: Path,
) -> None:
    fig = figures("outbox_outage", "Enqueue outbox: Redis SIGKILLed for 10 s under 800 enqueues/s")
    fig.bounds(
        producers=PRODUCERS, rate_per_producer=RATE, before_s=BEFORE, down_s=DOWN, after_s=AFTER,
    )  # fmt: skip
    server = redis_server_factory(appendonly=True, appendfsync="always")
    settings = Settings(
        redis_url=server.url, key_prefix="rel-outbox", queue_outbox=tmp_path / "outbox.sqlite3",
        command_timeout=1.0, connect_timeout=1.0, retry_attempts=1, retry_max_delay=0.2,
        breaker_reset_timeout=1.0, health_check_interval=0.5, connect_max_wait=2.0,
        queue_completed_max=100_000,
    )  # fmt: skip
    services = await Services(settings).start()
    assert services.client is not None and services.outbox is not None
    fig.meta(redis_version=(await services.client.info("server"))["redis_version"])
    queue = services.queue("outage")
    outbox = services.outbox

    enqueued: dict[int, list[str]] = {p: [] for p in range(PRODUCERS)}
    errors: list[str] = []
    held = Counter[str]()
    latency = Latencies()
    outage_latency = Latencies()
    down = False
    stop_at = time.monotonic() + BEFORE + DOWN + AFTER

    async def produce(p: int) -> None:
        start = time.monotonic()
        i = 0
        while time.monotonic() < stop_at:
            due = start + i / RATE
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            t = time.perf_counter()
            try:
                job = await queue.enqueue("record", {"p": p, "i": i})
            except Exception as exc:  # every error fails the scenario
                errors.append(f"{type(exc).__name__}: {exc}")
            else:
                enqueued[p].append(job.id)
                held[job.status.value] += 1
            (outage_latency if down else latency).add(time.perf_counter() - t)
            i += 1

    restarted_at = 0.0

    async def outage() -> None:
        nonlocal down, restarted_at
        await asyncio.sleep(BEFORE)
        server.kill()
        down = True
        await asyncio.sleep(DOWN)
        await asyncio.to_thread(server.start)
        restarted_at = time.monotonic()
        down = False

    producing = asyncio.gather(*(produce(p) for p in range(PRODUCERS)), outage())
    max_depth = 0
    caught_up_s = None  # from the restart until the outbox was first empty again
    while not producing.done():
        depth = (await outbox.stats()).jobs
        max_depth = max(max_depth, depth)
        if restarted_at and depth == 0 and caught_up_s is None:
            caught_up_s = round(time.monotonic() - restarted_at, 2)
        await asyncio.sleep(0.1)
    await producing
    total = sum(len(ids) for ids in enqueued.values())
    fig.record(
        jobs=total, errors=len(errors), held=held[JobStatus.OUTBOX.value],
        direct=total - held[JobStatus.OUTBOX.value], max_outbox_depth=max_depth,
        rate_per_s=round(total / (BEFORE + DOWN + AFTER), 1),
        p50_ms=latency.summary()["p50_ms"], p99_ms=latency.summary()["p99_ms"],
        outage_p99_ms=outage_latency.summary()["p99_ms"],
        outage_max_ms=outage_latency.summary()["max_ms"], relay_caught_up_s=caught_up_s,
    )  # fmt: skip
    assert not errors, f"{len(errors)} enqueues failed: {errors[:5]}"
    assert held[JobStatus.OUTBOX.value] > RATE * PRODUCERS * DOWN / 2, "the outage held too few"

    drain = Deadline(DRAIN)
    assert await outbox.drained(DRAIN), "the outbox was not relayed"

    runs: Counter[str] = Counter()
    order: dict[int, list[int]] = {p: [] for p in range(PRODUCERS)}

    async def record(job: Job) -> None:
        runs[job.id] += 1
        order[job.payload["p"]].append(job.payload["i"])

    worker = services.worker({"record": record}, queues=["outage"], concurrency=1, prefetch=0,
                             handle_signals=False)  # fmt: skip
    runner = asyncio.create_task(worker.run())
    try:
        run_s = await wait_until(
            lambda: all_finished(queue, total), timeout=DRAIN, what="all jobs run"
        )
        fig.record(run_s=round(run_s, 2))
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner, 15)
        await services.close()
    ids = {i for p in enqueued.values() for i in p}
    lost = ids - set(runs)
    duplicates = sum(n - 1 for n in runs.values() if n > 1)
    out_of_order = sum(1 for seq in order.values() for a, b in itertools.pairwise(seq) if b <= a)
    fig.record(
        processed=len(runs), lost=len(lost), duplicates=duplicates, out_of_order=out_of_order,
        drain_s=round(drain.elapsed, 2),
    )  # fmt: skip
    assert len(ids) == total, "two enqueues returned the same id"
    assert not lost, f"{len(lost)} acknowledged jobs never ran"
    assert duplicates == 0, f"{duplicates} duplicate runs"
    assert out_of_order == 0, "a producer's jobs ran out of order"
    assert all(order[p] == list(range(len(enqueued[p]))) for p in order)
