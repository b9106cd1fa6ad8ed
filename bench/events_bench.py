"""Issue 15 benchmark: job events on vs off end to end, ``wait()`` wake-up latency, and the idle
cost of 10,000 schedules.

    .venv/bin/python bench/events_bench.py [--jobs 20000] [--rounds 3] [--waits 1000]
        [--schedules 10000] [--idle-seconds 60]

Runs against a private ``redis-server`` it starts on a free loopback port (stopped at the end),
so that the command counts are this benchmark's alone.

1. End to end: ``--jobs`` jobs enqueued, then one in-process worker (async no-op handler)
   drains them; jobs/s with events on and off, interleaved ``--rounds`` times; medians.
2. ``wait`` wake-up: for each of ``--waits`` jobs, a waiter blocks in ``wait()`` while another
   connection completes the job (one step script); latency = wake-up minus the completing
   script's reply; p50 and p99.
3. Idle cost: ``--schedules`` schedules ``every=60`` spread evenly over the minute, one worker
   for ``--idle-seconds``: Redis commands/s (INFO delta), scheduling passes/s and the worker
   process's CPU %, with the ticks' jobs run by the same worker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from typing import Any

from redkeep.queue import JobSpec, RedisJobQueue, Worker
from redkeep.queue.protocol import Outcome, StepRequest
from redkeep.redis.mux import MuxClient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis() -> tuple[subprocess.Popen[bytes], str, str]:
    port, tmp = _free_port(), tempfile.mkdtemp(prefix="redkeep-bench-")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", tmp],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0", tmp


async def end_to_end(url: str, n: int, events: bool, tag: str) -> float:
    client = MuxClient(url)
    q = RedisJobQueue(client, f"e2e-{tag}", key_prefix="bench")
    await q.set_events(events)
    for start in range(0, n, 1000):
        await q.enqueue_many([JobSpec("noop", i) for i in range(start, min(n, start + 1000))])

    async def noop(job: Any) -> None:
        return None

    worker = Worker(q, {"noop": noop}, concurrency=50, handle_signals=False)
    began = time.perf_counter()
    task = asyncio.create_task(worker.run())
    # until nothing is left to run (retention keeps at most 10,000 completed jobs by default)
    while True:
        counts = await q.counts()
        if not any(counts[s] for s in ("waiting", "active", "delayed")):
            break
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - began
    worker.stop()
    await task
    await client.execute("FLUSHDB")  # the private server of this benchmark only
    await client.close()
    return n / elapsed


async def wait_latency(url: str, n: int) -> tuple[float, float]:
    waiter_client, completer = MuxClient(url), MuxClient(url)
    q = RedisJobQueue(waiter_client, "waits", key_prefix="bench")
    qc = RedisJobQueue(completer, "waits", key_prefix="bench")
    latencies = []
    for i in range(n):
        job = await q.enqueue("x", i)
        claimed = (await qc.step(StepRequest("c", f"c-{i}a", claim=1))).jobs[0]
        waiting = asyncio.ensure_future(q.wait(job.id, timeout=10))
        await asyncio.sleep(0.002)  # the waiter is registered and blocked
        await qc.step(
            StepRequest("c", f"c-{i}b", [Outcome(claimed.id, claimed.token, "done", "1")])
        )
        done = time.perf_counter()
        await waiting
        latencies.append(max(0.0, time.perf_counter() - done))
    await waiter_client.close()
    await completer.close()
    latencies.sort()
    return latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000


async def idle_cost(url: str, n: int, seconds: float) -> dict[str, float]:
    client = MuxClient(url)
    q = RedisJobQueue(client, "sched", key_prefix="bench")
    now = time.time()
    for i in range(n):
        await q.schedule(f"s{i}", "noop", every=60, start_at=now + 60 + 60 * i / n)
    passes = 0
    fire = q.fire_schedules

    async def counted(worker_id: str) -> float:
        nonlocal passes
        passes += 1
        return await fire(worker_id)

    q.fire_schedules = counted  # type: ignore[method-assign]

    async def noop(job: Any) -> None:
        return None

    worker = Worker(q, {"noop": noop}, handle_signals=False)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(65)  # the first ticks come a minute after creation
    info0 = await client.info("stats")
    cpu0, wall0, passes0 = time.process_time(), time.perf_counter(), passes
    await asyncio.sleep(seconds)
    info1 = await client.info("stats")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    worker.stop()
    await task
    completed = (await q.counts())["completed"]
    await client.close()
    commands = int(info1["total_commands_processed"]) - int(info0["total_commands_processed"])
    return {"commands_per_s": commands / wall, "passes_per_s": (passes - passes0) / wall,
            "cpu_percent": 100 * cpu / wall, "jobs_completed": completed}  # fmt: skip


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--waits", type=int, default=1000)
    p.add_argument("--schedules", type=int, default=10_000)
    p.add_argument("--idle-seconds", type=float, default=60.0)
    args = p.parse_args()
    proc, url, tmp = start_redis()
    try:
        on, off = [], []
        for r in range(args.rounds):
            off.append(await end_to_end(url, args.jobs, False, f"off{r}"))
            on.append(await end_to_end(url, args.jobs, True, f"on{r}"))
        m_on, m_off = statistics.median(on), statistics.median(off)
        print(
            f"end to end, {args.jobs} jobs: events on {m_on:,.0f} jobs/s, off {m_off:,.0f} "
            f"jobs/s (medians of {args.rounds}); events cost {100 * (1 - m_on / m_off):.1f} %"
        )
        p50, p99 = await wait_latency(url, args.waits)
        print(f"wait() wake-up over {args.waits} jobs: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        if args.schedules:
            cost = await idle_cost(url, args.schedules, args.idle_seconds)
            print(
                f"{args.schedules} schedules every=60, one worker, {args.idle_seconds:g} s: "
                f"{cost['commands_per_s']:.1f} Redis commands/s, "
                f"{cost['passes_per_s']:.2f} scheduling passes/s, worker CPU "
                f"{cost['cpu_percent']:.1f} % ({cost['jobs_completed']:.0f} tick jobs run)"
            )
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(main())
