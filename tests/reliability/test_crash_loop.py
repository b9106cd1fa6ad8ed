"""Scenario 1: worker crash loop. Worker processes are SIGKILLed and restarted under load.

Every job records each of its runs in Redis before doing its work. One of three worker processes
is SIGKILLed every 1-3 s and restarted, for at most the kill window; afterwards every job must be
completed (none lost) and the re-runs (duplicates) must be at most kills x concurrency: a killed
worker can only have been running ``concurrency`` jobs.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redkeep.queue import JobSpec, RedisJobQueue
from redkeep.redis.mux import MuxClient
from tests.reliability.harness import Deadline, Figures, scale, wait_until
from tests.reliability.jobs import all_finished, run_counts, statuses
from tests.reliability.processes import WorkerPool

pytestmark = pytest.mark.slow

JOBS = scale(300, 2000)
KILL_WINDOW = scale(15.0, 60.0)
WORKERS = 3
CONCURRENCY = 10
LEASE = 2.0
JOB_SECONDS = scale(0.5, 0.4)
DRAIN = LEASE * 3 + scale(20.0, 40.0)


@pytest.mark.timeout(KILL_WINDOW + DRAIN + 60)
async def test_worker_crash_loop_loses_no_job(
    redis_server_factory: Callable[..., Any],
    figures: Callable[[str, str], Figures],
    tmp_path: Path,
) -> None:
    fig = figures("crash_loop", "Worker crash loop (SIGKILL + restart every 1-3 s)")
    fig.bounds(
        jobs=JOBS, workers=WORKERS, concurrency=CONCURRENCY, kill_window_s=KILL_WINDOW,
        lease_s=LEASE, job_seconds=JOB_SECONDS, drain_s=DRAIN,
    )  # fmt: skip
    server = redis_server_factory()
    client = MuxClient(server.url)
    fig.meta(redis_version=(await client.info("server"))["redis_version"])
    prefix, runs_key = "rel", "rel:runs"
    queue = RedisJobQueue(client, "crash", key_prefix=prefix, max_attempts=1000)
    enqueued = await queue.enqueue_many(JobSpec("record", {"n": i}) for i in range(JOBS))
    ids = {job.id for job in enqueued}
    assert len(ids) == JOBS

    pool = WorkerPool(
        WORKERS,
        [
            "--url", server.url, "--queue", "crash", "--key-prefix", prefix,
            "--runs-key", runs_key, "--concurrency", str(CONCURRENCY), "--lease", str(LEASE),
            "--job-seconds", str(JOB_SECONDS),
        ],
        tmp_path,
    )  # fmt: skip
    rng = random.Random(1)
    try:
        pool.start()
        window = Deadline(KILL_WINDOW)
        while not window.expired and not await all_finished(queue, JOBS):
            pause = Deadline(min(rng.uniform(1.0, 3.0), window.remaining))
            while not pause.expired and not await all_finished(queue, JOBS):
                await asyncio.sleep(0.1)
            if pause.expired and not window.expired:
                victim = rng.choice(pool.workers)
                victim.kill()
                victim.start()
        kills = pool.kills
        fig.record(kills=kills, kill_window_used_s=round(window.elapsed, 1))
        drained = await wait_until(
            lambda: all_finished(queue, JOBS), timeout=DRAIN, interval=0.2, what="all jobs done"
        )
        status = await statuses(queue)
        runs = await run_counts(client, runs_key)
        lost = sorted(i for i in ids if status.get(i) != "completed")
        never_ran = sorted(i for i in ids if runs.get(i, 0) == 0)
        duplicates = sum(max(0, runs.get(i, 0) - 1) for i in ids)
        fig.record(
            jobs=JOBS,
            completed=sum(1 for i in ids if status.get(i) == "completed"),
            lost=len(lost),
            duplicates=duplicates,
            max_runs=max(runs.values(), default=0),
            drain_s=round(drained, 1),
            worker_starts=sum(w.starts for w in pool.workers),
        )
        assert not lost, f"{len(lost)} jobs not completed, e.g. {lost[:5]}"
        assert not never_ran, f"{len(never_ran)} completed jobs have no recorded run"
        assert kills >= 1, "the crash loop never killed a worker"
        assert duplicates <= kills * CONCURRENCY, (
            f"{duplicates} duplicate runs exceed kills x concurrency = {kills * CONCURRENCY}"
        )
    except BaseException:
        print(pool.logs())
        raise
    finally:
        pool.close()
        await client.close()
