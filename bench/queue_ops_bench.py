"""Queue hot-path benchmark (not a test): where an enqueue or a claim spends its time.

For the redkeep importable from the current path, against a private redis-server: sequential
single enqueues, bulk enqueues (chunks of 1,000) and worker steps claiming 10 jobs and reporting
10 outcomes. For each: wall time per job on the client, and the server's script time per job
(``INFO commandstats``, EVALSHA usec). Compare two trees by running it with each on the path,
interleaved (the machine may be shared)::

    for i in 1 2 3; do
      PYTHONPATH=/tmp/main-src/src .venv/bin/python bench/queue_ops_bench.py
      PYTHONPATH=src .venv/bin/python bench/queue_ops_bench.py
    done

Env: ``REDKEEP_BENCH_N`` jobs per case (default 20000).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import redis
from _common import private_redis, script_usec

import redkeep
from redkeep.queue import JobSpec, RedisJobQueue
from redkeep.redis.mux import MuxClient

N = int(os.environ.get("REDKEEP_BENCH_N", "20000"))


async def _step(q: RedisJobQueue, worker: str, n: int, outcomes: list[Any]) -> Any:
    """One worker step through whichever protocol the tree has."""
    step = getattr(q, "step", None)
    if step is not None:
        from redkeep.queue.protocol import StepRequest

        return await step(StepRequest(worker, f"{worker}:{n}", outcomes, 10, 30.0))
    return await q._step(worker, outcomes, 10, 30.0)  # type: ignore[attr-defined]


def _outcome(job: Any) -> Any:
    try:
        from redkeep.queue.protocol import Outcome
    except ImportError:
        from redkeep.queue.job import Outcome  # type: ignore[attr-defined,no-redef]
    return Outcome(job.id, job.token, "done", "null")


async def run(url: str, r: redis.Redis) -> dict[str, tuple[float, float]]:
    client = MuxClient(url)
    out: dict[str, tuple[float, float]] = {}
    q = RedisJobQueue(client, "bench-single")
    await q.enqueue("warm")
    r.config_resetstat()
    t0 = time.perf_counter()
    for _ in range(N):
        await q.enqueue("noop")
    out["enqueue 1-by-1"] = ((time.perf_counter() - t0) / N, script_usec(r) / N)

    q = RedisJobQueue(client, "bench-bulk")
    await q.enqueue("warm")
    r.config_resetstat()
    t0 = time.perf_counter()
    for _ in range(N // 1000):
        await q.enqueue_many([JobSpec("noop")] * 1000)
    out["enqueue bulk"] = ((time.perf_counter() - t0) / N, script_usec(r) / N)

    r.config_resetstat()
    t0 = time.perf_counter()
    held: list[Any] = []
    n = 0
    while True:
        n += 1
        res = await _step(q, "w1", n, [_outcome(j) for j in held])
        held = res.jobs
        if not held:
            break
    out["step: claim+complete"] = ((time.perf_counter() - t0) / N, script_usec(r) / N)
    await client.close()
    return out


def main() -> None:
    with private_redis("rk-queue-ops-") as (url, r):
        results = asyncio.run(run(url, r))
        print(f"redkeep from {os.path.dirname(redkeep.__file__)}, N={N}")
        for case, (wall, script) in results.items():
            print(f"  {case:<22} client {wall * 1e6:8.2f} µs/job   script {script:6.2f} µs/job")


if __name__ == "__main__":
    main()
