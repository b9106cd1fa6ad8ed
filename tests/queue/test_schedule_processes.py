"""Schedules driven by real worker processes: every=1 for 10 s with three workers gives one
job per tick, and a worker killed and restarted in between changes nothing."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from redkeep.queue import JobStatus, RedisJobQueue
from tests.queue.conftest import wait_until

WORKER = Path(__file__).with_name("schedule_worker.py")
RUN = 10.0


def _spawn(url: str, prefix: str, queue: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, prefix, queue],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


async def test_every_second_for_10s_with_three_workers_and_a_restart(
    resp_client: Any, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    q = RedisJobQueue(resp_client, "sched", key_prefix=prefix)
    procs = [_spawn(redis_url, prefix, "sched", tmp_path / f"w{i}.log") for i in range(3)]
    try:

        async def passing() -> bool:  # the workers are up and scheduling
            return await resp_client.hget(q.keys.meta, "schedpass") is not None

        await wait_until(passing, 60)
        created = await q.schedule("beat", "tick", every=1)
        first = created.next_run_at
        assert first is not None
        window_end = first + RUN - 0.5  # ticks first .. first + RUN - 1
        # Killed mid-run, half-way between two ticks: a SIGKILL right after a tick's handler ran
        # and before its outcome was reported would rightly run that job again (at-least-once).
        await asyncio.sleep(max(0.0, first + 2.5 - time.time()))
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait(10)
        await asyncio.sleep(1.5)
        procs[0] = _spawn(redis_url, prefix, "sched", tmp_path / "w0-again.log")  # restarted
        await asyncio.sleep(max(0.0, window_end + 1.5 - time.time()))
        assert await q.pause_schedule("beat")

        # dump_jobs reads status by status while the workers run the last ticks, so a job that
        # moves on during the dump can be listed twice: one entry per id. A tick's job id is
        # derived from the tick, so one id per tick is one job per tick.
        jobs = list({j.id: j async for j in q.dump_jobs()}.values())
        ticks = sorted(int(j.id.rsplit(":", 1)[1]) for j in jobs)
        assert len(ticks) == len(set(ticks))  # no tick twice
        in_window = [t for t in ticks if first * 1000 <= t <= window_end * 1000]
        assert RUN - 1 <= len(in_window) <= RUN + 1, [t - first * 1000 for t in ticks]
        assert all(b - a == 1000 for a, b in itertools.pairwise(ticks))  # none lost

        async def all_ran() -> bool:
            done = [await q.get_job(j.id) for j in jobs]
            return all(d is not None and d.status == JobStatus.COMPLETED for d in done)

        await wait_until(all_ran, 15)
        ran = await resp_client.lrange(f"{prefix}:ran", 0, -1)
        assert set(ran) == {j.id for j in jobs}
        assert len(ran) == len(set(ran)), "a tick's job ran twice"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
