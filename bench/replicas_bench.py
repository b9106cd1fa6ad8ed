"""Replica-acknowledged writes benchmark (not a test): what ``REDKEEP_QUEUE_MIN_REPLICAS=1`` costs.

A private primary and one replica of it (``redis-server`` on free loopback ports, no persistence,
stopped by PID at the end). For ``min_replicas`` 0 and 1, interleaved (every round runs both, in
turns; the machine may be shared), on the transport ``REDKEEP_BENCH_TRANSPORT`` (``mux``, the
default, or ``redis-py``):

- ``enqueue_1``: single enqueues from 1 coroutine (each waits for its own WAIT);
- ``enqueue_c50``: single enqueues from 50 coroutines;
- ``enqueue_many``: ``enqueue_many`` in batches of 100 (one WAIT per batch);
- ``drain``: a worker (concurrency 50) runs ``N`` enqueued no-op jobs; its steps, which
  record the completions, wait for the replica with the option.

Reported: jobs/s (medians of ``REPEATS`` rounds) and the ratio with/without the option.

    .venv/bin/python bench/replicas_bench.py

Env: ``REDKEEP_BENCH_N`` (jobs per case, default 5000), ``REDKEEP_BENCH_REPEATS`` (default 5).
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
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redkeep.queue import JobSpec, RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient
from redkeep.redis.redispy import RedisPyClient

N = int(os.environ.get("REDKEEP_BENCH_N", "5000"))
REPEATS = int(os.environ.get("REDKEEP_BENCH_REPEATS", "5"))
TRANSPORT = os.environ.get("REDKEEP_BENCH_TRANSPORT", "mux")
CASES = ["enqueue_1", "enqueue_c50", "enqueue_many", "drain"]
MODES = [0, 1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found on PATH")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--repl-diskless-sync-delay", "0", *args],
        cwd=tempfile.mkdtemp(prefix="redkeep-bench-"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return proc, port


def _cli(port: int, *args: str) -> str:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, check=False
    )
    return out.stdout


def _wait_online(primary: int) -> None:
    deadline = time.monotonic() + 15
    while "state=online" not in _cli(primary, "INFO", "replication"):
        if time.monotonic() > deadline:
            sys.exit("the replica did not sync")
        time.sleep(0.05)


async def _enqueue_1(q: RedisJobQueue) -> None:
    for i in range(N):
        await q.enqueue("job", i)


async def _enqueue_c50(q: RedisJobQueue) -> None:
    async def one(k: int) -> None:
        for i in range(k, N, 50):
            await q.enqueue("job", i)

    await asyncio.gather(*(one(k) for k in range(50)))


async def _enqueue_many(q: RedisJobQueue) -> None:
    for start in range(0, N, 100):
        await q.enqueue_many([JobSpec("job", i) for i in range(start, min(N, start + 100))])


async def _drain(q: RedisJobQueue) -> float:
    """Seconds for a worker to run N jobs enqueued beforehand (the enqueue is not timed)."""
    await q.enqueue_many([JobSpec("job", i) for i in range(N)])
    done = asyncio.Event()
    count = 0

    async def handler(job: Any) -> None:
        nonlocal count
        count += 1
        if count == N:
            done.set()

    worker = Worker(q, {"job": handler}, concurrency=50, handle_signals=False)
    start = time.perf_counter()
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - start
    worker.stop()
    await running
    return elapsed


async def _case(client: Any, case: str, replicas: int) -> float:
    q = RedisJobQueue(
        client, f"b-{uuid.uuid4().hex[:8]}", key_prefix="rkbench", min_replicas=replicas
    )
    await q.register()
    if case == "drain":
        return N / await _drain(q)
    run: dict[str, Callable[[RedisJobQueue], Awaitable[None]]] = {
        "enqueue_1": _enqueue_1, "enqueue_c50": _enqueue_c50, "enqueue_many": _enqueue_many,
    }  # fmt: skip
    start = time.perf_counter()
    await run[case](q)
    return N / (time.perf_counter() - start)


async def main() -> None:
    primary, port = _start()
    replica, _ = _start("--replicaof", "127.0.0.1", str(port))
    try:
        _wait_online(port)
        url = f"redis://127.0.0.1:{port}/0"
        client = MuxClient(url) if TRANSPORT == "mux" else RedisPyClient(url)
        results: dict[tuple[str, int], list[float]] = {}
        try:
            for r in range(REPEATS):
                for case in CASES:
                    for replicas in MODES if r % 2 == 0 else MODES[::-1]:
                        rate = await _case(client, case, replicas)
                        results.setdefault((case, replicas), []).append(rate)
                _cli(port, "FLUSHALL")  # the private primary only
                print(f"round {r + 1}/{REPEATS} done", file=sys.stderr)
        finally:
            await client.close()
    finally:
        for proc in (replica, primary):
            proc.kill()
            proc.wait()
    print(f"\n### Replica-acknowledged writes ({TRANSPORT}, N={N}, median of {REPEATS}, jobs/s)\n")
    print("| case | min_replicas=0 | min_replicas=1 | ratio |")
    print("|---|---|---|---|")
    for case in CASES:
        off = statistics.median(results[(case, 0)])
        on = statistics.median(results[(case, 1)])
        print(f"| {case} | {off:,.0f} | {on:,.0f} | {on / off:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
