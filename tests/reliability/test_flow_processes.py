"""Flow control across worker processes on the shared Redis: pause, rate limits and groups are
enforced by the claim script for every worker, not in one worker's memory. Each worker is a
real process (``tests/reliability/flow_proc.py``) whose handler records its starts in Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redkeep.queue import JobSpec, RedisJobQueue
from redkeep.redis.mux import MuxClient
from tests.reliability.harness import Deadline
from tests.reliability.processes import WorkerProcess

MODULE = "tests.reliability.flow_proc"


@pytest.fixture
def workers(tmp_path: Path, redis_url: str, prefix: str) -> Iterator[Any]:
    """``workers(n, queue, concurrency=10, lease=2.0) -> [WorkerProcess]``, stopped by PID."""
    started: list[WorkerProcess] = []

    def start(n: int, queue: str, concurrency: int = 10, lease: float = 2.0) -> list[WorkerProcess]:
        args = ["--url", redis_url, "--queue", queue, "--key-prefix", prefix,
                "--concurrency", str(concurrency), "--lease", str(lease)]  # fmt: skip
        procs = [
            WorkerProcess(f"flow-{len(started) + i}", args, tmp_path, module=MODULE)
            for i in range(n)
        ]
        for p in procs:
            p.start()
            started.append(p)
        for p in procs:
            p.wait_ready()
        return procs

    try:
        yield start
    finally:
        for p in started:
            p.kill()


async def _starts(client: MuxClient, prefix: str) -> list[tuple[float, float, str, str]]:
    """Every recorded start: (wall time, claim time, job id, group)."""
    lines = await client.execute("LRANGE", f"{prefix}:starts", 0, -1)
    out = []
    for line in lines or []:
        wall, claim, job_id, group = str(line).split(" ")
        out.append((float(wall), float(claim), job_id, group))
    return out


async def _until(check: Any, seconds: float, what: str) -> None:
    deadline = Deadline(seconds)
    while not deadline.expired:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {seconds}s")


async def test_pause_stops_claims_across_processes_and_a_kill_while_paused_loses_nothing(
    workers: Any, redis_url: str, prefix: str
) -> None:
    client = MuxClient(redis_url)
    try:
        q = RedisJobQueue(client, "paused", key_prefix=prefix)
        procs = workers(3, "paused", concurrency=4, lease=2.0)
        n = 300
        await q.enqueue_many([JobSpec("work", {"sleep": 0.2}) for _ in range(n)])

        async def some_started() -> bool:
            return len(await _starts(client, prefix)) >= 40

        await _until(some_started, 20, "40 jobs started")
        await q.pause()
        paused_at = time.time()
        procs[0].kill()  # mid-job: its jobs are active, their leases run out while paused
        await asyncio.sleep(0.5)
        before = await _starts(client, prefix)
        last_claim = max(claim for _, claim, _, _ in before)
        last_start = max(wall for wall, _, _, _ in before)
        assert last_claim - paused_at <= 0.1, f"claimed {last_claim - paused_at:.3f}s after pause"
        assert last_start - paused_at <= 0.5  # started at once (prefetch 0): not a claim
        waiting = (await q.counts())["waiting"]

        async def leases_reaped() -> bool:
            return (await q.counts())["active"] == 0

        await _until(leases_reaped, 10, "the killed worker's leases recovered while paused")
        counts = await q.counts()
        assert counts["waiting"] >= waiting and counts["completed"] + counts["waiting"] == n
        assert len(await _starts(client, prefix)) == len(before)  # nothing claimed meanwhile
        workers(1, "paused", concurrency=4, lease=2.0)
        await asyncio.sleep(0.3)
        assert len(await _starts(client, prefix)) == len(before)
        await q.resume()

        async def all_done() -> bool:
            return (await q.counts())["completed"] == n

        await _until(all_done, 40, f"all {n} jobs completed after resume")
        counts = await q.counts()
        assert counts["failed"] == counts["waiting"] == counts["active"] == 0
    finally:
        await client.close()


async def test_rate_limit_holds_across_processes(workers: Any, redis_url: str, prefix: str) -> None:
    # 50 jobs/s for 10 s with 3 worker processes: 500 +-3 % start, no 1-s window holds more
    # than 50 starts (claim times: the server clock the limit is enforced on).
    client = MuxClient(redis_url)
    try:
        q = RedisJobQueue(client, "rated", key_prefix=prefix)
        await q.set_rate_limit(50, 1.0)
        await q.enqueue_many([JobSpec("work", {"sleep": 0.01}) for _ in range(1000)])
        workers(3, "rated", concurrency=10)

        async def started() -> bool:
            return bool(await _starts(client, prefix))

        await _until(started, 20, "the first start")
        first_wall = min(wall for wall, _, _, _ in await _starts(client, prefix))
        await asyncio.sleep(max(0.0, first_wall + 10.5 - time.time()))
        claims = sorted(claim for _, claim, _, _ in await _starts(client, prefix))
        in_ten = [c for c in claims if c < claims[0] + 10.0]
        assert 485 <= len(in_ten) <= 515, len(in_ten)
        busiest = max(sum(1 for c in claims[i : i + 60] if c < s + 1.0)
                      for i, s in enumerate(claims))  # fmt: skip
        assert busiest <= 50, f"{busiest} starts in one 1-s window"
        await q.cancel_waiting()
    finally:
        await client.close()


async def test_group_concurrency_holds_across_processes(
    workers: Any, redis_url: str, prefix: str
) -> None:
    # Group concurrency 2 with 3 worker processes x concurrency 10: never more than 2 jobs of
    # one group active at once (the handlers count themselves in and out in Redis).
    client = MuxClient(redis_url)
    try:
        q = RedisJobQueue(client, "grouped", key_prefix=prefix)
        await q.set_group_limit(concurrency=2)
        specs = [JobSpec("work", {"sleep": 0.05}, group=f"g{i % 3}") for i in range(90)]
        await q.enqueue_many(specs)
        workers(3, "grouped", concurrency=10)

        async def all_done() -> bool:
            return (await q.counts())["completed"] == 90

        await _until(all_done, 60, "90 grouped jobs completed")
        levels = await client.execute("LRANGE", f"{prefix}:levels", 0, -1)
        peak: dict[str, int] = {}
        for line in levels or []:
            group, level = str(line).split(" ")
            peak[group] = max(peak.get(group, 0), int(level))
        assert peak == {"g0": 2, "g1": 2, "g2": 2}, peak
    finally:
        await client.close()


async def test_a_small_group_is_not_delayed_by_a_big_one(
    workers: Any, redis_url: str, prefix: str
) -> None:
    # Group A enqueued 10,000 jobs, then group B 10: all of B's start before A's 200th.
    client = MuxClient(redis_url)
    try:
        q = RedisJobQueue(client, "fair", key_prefix=prefix)
        for start in range(0, 10_000, 1000):
            await q.enqueue_many([JobSpec("work", group="A") for _ in range(start, start + 1000)])
        await q.enqueue_many([JobSpec("work", group="B") for _ in range(10)])
        workers(3, "fair", concurrency=10)

        async def enough() -> bool:
            starts = await _starts(client, prefix)
            return sum(1 for s in starts if s[3] == "A") >= 200

        await _until(enough, 60, "200 starts of A")
        starts = sorted(await _starts(client, prefix), key=lambda s: (s[1], s[0]))
        a_200th = [i for i, s in enumerate(starts) if s[3] == "A"][199]
        b_starts = [i for i, s in enumerate(starts) if s[3] == "B"]
        assert len(b_starts) == 10 and max(b_starts) < a_200th, (b_starts, a_200th)
        await q.cancel_waiting()
    finally:
        await client.close()


async def test_a_killed_workers_group_slot_is_freed_when_its_lease_expires(
    workers: Any, redis_url: str, prefix: str
) -> None:
    client = MuxClient(redis_url)
    try:
        q = RedisJobQueue(client, "gkill", key_prefix=prefix)
        await q.set_group_limit(concurrency=1)
        await q.enqueue_many([JobSpec("work", {"sleep": 30}, group="g") for _ in range(3)])
        [victim] = workers(1, "gkill", concurrency=5, lease=2.0)

        async def started(n: int) -> Any:
            async def check() -> bool:
                return len(await _starts(client, prefix)) >= n

            return check

        await _until(await started(1), 20, "the first start")
        workers(1, "gkill", concurrency=5, lease=2.0)
        await asyncio.sleep(0.5)
        assert len(await _starts(client, prefix)) == 1  # the group's one slot is held
        victim.kill()  # SIGKILL mid-job
        killed_at = time.time()
        await _until(await started(2), 15, "a start after the lease expired")
        assert time.time() - killed_at <= 2.0 + 5.0  # lease + a few steps
        counts = await q.counts()
        assert counts["active"] == 1 and counts["waiting"] == 2
        await q.cancel_waiting()
    finally:
        await client.close()
