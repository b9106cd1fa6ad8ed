"""What OpenTelemetry tracing costs end to end (not a test): jobs/s and CPU per job.

Modes, each run by a producer and a worker process of this checkout:

- ``off``: OpenTelemetry not installed (every ``opentelemetry`` import fails in both
  processes) and redkeep not instrumented: the baseline.
- ``unconfigured``: ``RedkeepInstrumentor().instrument()`` with the API installed but no tracer
  provider set (what ``pip install 'redkeep[otel]'`` without an SDK set-up costs).
- ``sdk``: instrumented, the SDK's ``TracerProvider`` set with no span processor or exporter:
  every span is created, sampled and ended, then dropped (tracing installed, no exporter).
- ``sdk_10pct``: as ``sdk`` with a parent-based 10 % ratio sampler (a common production set-up).

Each round starts a private redis-server (no persistence) on a free loopback port, then for
every mode in turn (interleaved, so load from other processes hits all modes alike): an idle
worker (concurrency 10, uvloop when installed, async handler that does one ``INCRBY``), then
``N`` jobs enqueued one call at a time by 50 concurrent tasks of a producer process (started,
imported and connected before the clock starts) while the worker runs, timed until the last
job ran. Reported per mode, medians over the rounds: jobs/s
(wall, enqueue included), producer and worker CPU µs per job (user + system from /proc,
start-up excluded), and the ratio of jobs/s to ``off``.

    .venv/bin/python bench/otel_bench.py [N] [ROUNDS] [MODES]  # 20000 5 off,unconfigured,sdk,...
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time

import redis
from _common import private_redis, process_cpu

MODES = ("off", "unconfigured", "sdk", "sdk_10pct")

SETUP = """
import sys
mode = sys.argv[1]
if mode == "off":
    import importlib.abc

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "opentelemetry":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
else:
    from redkeep.contrib.otel import RedkeepInstrumentor

    RedkeepInstrumentor().instrument()
    if mode.startswith("sdk"):
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        sampler = ParentBased(TraceIdRatioBased(0.1)) if mode == "sdk_10pct" else None
        trace.set_tracer_provider(TracerProvider(sampler=sampler))
try:
    import uvloop
    run = uvloop.run
except ImportError:
    import asyncio
    run = asyncio.run
"""

PRODUCER = (
    SETUP
    + """
import asyncio
from redkeep.queue import RedisJobQueue
from redkeep.redis.mux import MuxClient

async def main(url, n):
    client = MuxClient(url)
    q = RedisJobQueue(client, "otel", key_prefix="otelbench")
    await q.register()
    per_task = n // 50

    async def produce():
        for _ in range(per_task):
            await q.enqueue("noop")

    print("ready", flush=True)  # imports and connection done: the measured part starts on "go"
    sys.stdin.readline()
    await asyncio.gather(*(produce() for _ in range(50)))
    await client.close()

run(main(sys.argv[2], int(sys.argv[3])))
"""
)

WORKER = (
    SETUP
    + """
from redkeep.queue import RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient

async def main(url):
    client = MuxClient(url)
    q = RedisJobQueue(client, "otel", key_prefix="otelbench")

    async def noop(job):
        await client.incrby("otelbench:done", 1)

    await Worker(q, {"noop": noop}, concurrency=10).run()

run(main(sys.argv[2]))
"""
)


def one_run(r: redis.Redis, url: str, mode: str, n: int) -> tuple[float, float, float]:
    """(jobs/s, producer µs CPU/job, worker µs CPU/job) of ``n`` jobs in ``mode``."""
    r.flushall()  # a private server of this benchmark, never the shared one
    env = {**os.environ, "REDKEEP_LOG_LEVEL": "WARNING"}
    worker = subprocess.Popen([sys.executable, "-c", WORKER, mode, url], env=env)
    try:
        time.sleep(3.0)  # started and idle
        producer = subprocess.Popen(
            [sys.executable, "-c", PRODUCER, mode, url, str(n)],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert producer.stdin is not None and producer.stdout is not None
        assert producer.stdout.readline().strip() == "ready"  # start-up is not measured
        wcpu0, pcpu0 = process_cpu(worker.pid), process_cpu(producer.pid)
        t0 = time.perf_counter()
        producer.stdin.write("go\n")
        producer.stdin.flush()
        while int(r.get("otelbench:done") or 0) < n:
            time.sleep(0.002)
        wall = time.perf_counter() - t0
        pcpu = process_cpu(producer.pid) - pcpu0
        wcpu = process_cpu(worker.pid) - wcpu0
        producer.wait(30)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    return n / wall, pcpu / n * 1e6, wcpu / n * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    modes = sys.argv[3].split(",") if len(sys.argv) > 3 else list(MODES)
    unknown = set(modes) - set(MODES)
    if unknown:
        raise SystemExit(f"unknown modes {sorted(unknown)}; choose from {', '.join(MODES)}")
    results: dict[str, list[tuple[float, float, float]]] = {m: [] for m in modes}
    with private_redis("rk-otel-") as (url, r):
        for i in range(rounds):
            for mode in modes if i % 2 == 0 else reversed(modes):
                results[mode].append(one_run(r, url, mode, n))
    print(f"{n} jobs enqueued one by one (50 tasks) while 1 worker runs them; "
          f"medians of {rounds} interleaved rounds")  # fmt: skip
    base = statistics.median(row[0] for row in results[modes[0]])
    for mode, rows in results.items():
        rate, pcpu, wcpu = (statistics.median(col) for col in zip(*rows, strict=True))
        print(f"{mode:>13}: {rate:8,.0f} jobs/s ({rate / base:.2f}x {modes[0]}), "
              f"producer {pcpu:6.1f} µs CPU/job, worker {wcpu:6.1f} µs CPU/job")  # fmt: skip


if __name__ == "__main__":
    main()
