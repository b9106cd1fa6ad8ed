"""End-to-end A/B of two redkeep trees by CPU cost (not a test): what draining N jobs costs.

Wall-clock throughput on a shared machine moves by 2x between runs; CPU time per job moves far
less. For each tree, in turn (A B A B ...): a private redis-server, one idle worker process of
that tree (default settings, concurrency 10, uvloop when installed), then N no-op jobs (each one
``INCRBY``) enqueued in bulk by another process of that tree, timed until the last job ran.
Reported per tree, medians over the rounds: jobs/s (wall, enqueue included), the worker's CPU
µs per job (user + system from /proc, start-up excluded) and redis-server's (``INFO cpu``).

    .venv/bin/python bench/drain_cpu_ab.py /tmp/main-src . [N] [ROUNDS]   # 20000, 3

Each side imports redkeep from ``<tree>/src`` (the current venv supplies the dependencies).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis
from _common import private_redis, process_cpu

ENQUEUE = """
import asyncio, sys
from redkeep.queue import JobSpec, RedisJobQueue
from redkeep.redis.mux import MuxClient

async def main(url, n):
    client = MuxClient(url)
    q = RedisJobQueue(client, "drain", key_prefix="drain")
    for start in range(0, n, 1000):
        await q.enqueue_many([JobSpec("noop")] * min(1000, n - start))
    await client.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""

WORKER = """
import asyncio, sys
from redkeep.queue import RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient
try:
    import uvloop
except ImportError:
    uvloop = None

async def main(url):
    client = MuxClient(url)
    q = RedisJobQueue(client, "drain", key_prefix="drain")
    async def noop(job):
        await client.incrby("drain:done", 1)
    await Worker(q, {"noop": noop}, concurrency=10).run()

(uvloop.run if uvloop else asyncio.run)(main(sys.argv[1]))
"""


def _redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def one_round(tree: Path, n: int) -> tuple[float, float, float]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "REDKEEP_LOG_LEVEL": "WARNING"}
    with private_redis("rk-drain-") as (url, r):
        worker = subprocess.Popen([sys.executable, "-c", WORKER, url], env=env)
        time.sleep(3.0)  # started and idle
        cpu0, wcpu0 = _redis_cpu(r), process_cpu(worker.pid)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", ENQUEUE, url, str(n)], env=env, check=True)
        while int(r.get("drain:done") or 0) < n:
            time.sleep(0.002)
        wall = time.perf_counter() - t0
        redis_cpu = _redis_cpu(r) - cpu0
        worker_cpu = process_cpu(worker.pid) - wcpu0
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        return n / wall, worker_cpu / n * 1e6, redis_cpu / n * 1e6


def main() -> None:
    trees = {"A": Path(sys.argv[1]).resolve(), "B": Path(sys.argv[2]).resolve()}
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 20_000
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    results: dict[str, list[tuple[float, float, float]]] = {"A": [], "B": []}
    for _ in range(rounds):
        for side, tree in trees.items():
            results[side].append(one_round(tree, n))
    print(f"{n} no-op jobs, medians of {rounds} interleaved rounds")
    for side, rows in results.items():
        rate, wcpu, rcpu = (statistics.median(col) for col in zip(*rows, strict=True))
        print(f"{side} {trees[side]}: {rate:,.0f} jobs/s, worker {wcpu:.1f} µs CPU/job, "
              f"redis {rcpu:.1f} µs CPU/job")  # fmt: skip


if __name__ == "__main__":
    main()
