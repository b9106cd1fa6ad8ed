"""Worker benchmark (not a test): jobs per second through a Worker, per kind of handler.

Cases: an async handler (event loop), a sync handler in the thread pool without and with a job
timeout (the timed path waits on the thread's start), and a sync handler in the process
executor (skipped when the code under test has none). Each case enqueues ``N`` no-op jobs, then
times one worker (concurrency 10) from start until all are completed. A private
``redis-server`` (no persistence) runs on a free loopback port and is stopped by PID at the end.
Rounds are interleaved (every case once per round) so load from other processes hits all cases
alike; medians over the rounds are reported.

Env: ``REDKEEP_BENCH_N`` jobs per case and round (default 3000), ``REDKEEP_BENCH_REPEATS``
rounds (default 7).

    .venv/bin/python bench/worker_bench.py                               # this checkout
    PYTHONPATH=/path/to/other/src .venv/bin/python bench/worker_bench.py  # another version (A/B)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import bench_handlers

import redkeep
from redkeep.queue import JobSpec, RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient

N = int(os.environ.get("REDKEEP_BENCH_N", "3000"))
REPEATS = int(os.environ.get("REDKEEP_BENCH_REPEATS", "7"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cases() -> dict[str, tuple[Any, dict[str, Any], float | None]]:
    cases: dict[str, tuple[Any, dict[str, Any], float | None]] = {
        "async": (bench_handlers.async_noop, {}, None),
        "thread": (bench_handlers.sync_noop, {}, None),
        "thread+timeout": (bench_handlers.sync_noop, {}, 30.0),
    }
    if hasattr(redkeep, "in_process"):
        cases["process"] = (bench_handlers.sync_noop, {"executor": "process"}, None)
    return cases


async def _one(
    url: str, case: str, handler: Any, opts: dict[str, Any], timeout: float | None
) -> float:
    client = MuxClient(url)
    try:
        q = RedisJobQueue(client, f"bench-{case}-{time.monotonic_ns()}", key_prefix="wbench")
        for start in range(0, N, 1000):
            await q.enqueue_many(
                JobSpec("h", i, timeout=timeout) for i in range(start, min(N, start + 1000))
            )
        worker = Worker(q, {"h": handler}, concurrency=10, handle_signals=False, **opts)
        began = time.perf_counter()
        task = asyncio.create_task(worker.run())
        while (await q.counts())["completed"] < N:
            await asyncio.sleep(0.005)
        seconds = time.perf_counter() - began
        worker.stop()
        await task
        await q.purge("completed")
        return N / seconds
    finally:
        await client.close()


async def main() -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not on PATH")
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="redkeep-wbench-")
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"redis://127.0.0.1:{port}/0"
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), 0.1):
                    break
            except OSError:
                time.sleep(0.05)
        cases = _cases()
        rates: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(REPEATS):
            for name, (handler, opts, timeout) in cases.items():
                rates[name].append(await _one(url, name, handler, opts, timeout))
        print(f"redkeep from {os.path.dirname(redkeep.__file__)}; N={N}, {REPEATS} rounds")
        for name, values in rates.items():
            print(f"{name:16s} median {statistics.median(values):8.0f} jobs/s  "
                  f"(min {min(values):.0f}, max {max(values):.0f})")  # fmt: skip
    finally:
        server.kill()
        server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
