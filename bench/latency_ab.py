"""Paired latency benchmark of two redkeep trees (not a test): enqueue one job, wait until it ran.

On a shared machine, runs a few minutes apart are not comparable (the harness's p50 moves by
2x between repetitions). This runs both trees at once and alternates them job by job, so both
see the same load: one private redis-server; per tree a worker process (the tree's ``Worker``,
default settings, concurrency 10, uvloop when installed) and a producer process (the tree's
``RedisJobQueue``); the parent tells the producers in turn to enqueue one no-op job and to wait
for its ``INCR`` (keyspace notification, no polling). Reported: median and p99 per tree.

    .venv/bin/python bench/latency_ab.py /tmp/main-src . [N]     # N jobs per tree (2000)

Each side imports redkeep from ``<tree>/src`` (the current venv supplies the dependencies).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = """
import asyncio, sys
from redkeep.queue import RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient
try:
    import uvloop
except ImportError:
    uvloop = None

async def main(url, side):
    client = MuxClient(url)
    q = RedisJobQueue(client, "lat", key_prefix=f"lat-{side}")
    async def noop(job):
        await client.incrby(f"lat:{side}:done", 1)
    await Worker(q, {"noop": noop}, concurrency=10).run()

(uvloop.run if uvloop else asyncio.run)(main(sys.argv[1], sys.argv[2]))
"""

PRODUCER = """
import asyncio, sys, time
import redis.asyncio as aredis
from redkeep.queue import RedisJobQueue
from redkeep.redis.mux import MuxClient
try:
    import uvloop
except ImportError:
    uvloop = None

async def main(url, side):
    client = MuxClient(url)
    q = RedisJobQueue(client, "lat", key_prefix=f"lat-{side}")
    sub = aredis.Redis.from_url(url)
    pubsub = sub.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(f"__keyspace@0__:lat:{side}:done")
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    while (line := await reader.readline()):
        t0 = time.perf_counter()
        await q.enqueue("noop")
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            if msg is not None:
                break
        print(f"{(time.perf_counter() - t0) * 1000:.4f}", flush=True)

(uvloop.run if uvloop else asyncio.run)(main(sys.argv[1], sys.argv[2]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    trees = {"A": Path(sys.argv[1]).resolve(), "B": Path(sys.argv[2]).resolve()}
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="rk-lat-ab-")
    server = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp,
         "--notify-keyspace-events", "K$"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    procs: list[subprocess.Popen[str]] = []
    try:
        time.sleep(0.5)
        producers = {}
        for side, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": str(tree / "src"), "REDKEEP_LOG_LEVEL": "WARNING"}
            procs.append(subprocess.Popen([sys.executable, "-c", WORKER, url, side], env=env))
            producer = subprocess.Popen(
                [sys.executable, "-c", PRODUCER, url, side],
                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            procs.append(producer)
            producers[side] = producer
        for p in producers.values():
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        time.sleep(2.0)  # workers up and idle
        lat: dict[str, list[float]] = {"A": [], "B": []}
        for i in range(n + 100):
            for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
                p = producers[side]
                assert p.stdin is not None and p.stdout is not None
                p.stdin.write("go\n")
                p.stdin.flush()
                value = float(p.stdout.readline())
                if i >= 100:  # warm-up
                    lat[side].append(value)
        for side, values in lat.items():
            values.sort()
            p99 = values[int(0.99 * (len(values) - 1))]
            print(f"{side} {trees[side]}: p50 {statistics.median(values):.3f} ms, "
                  f"p99 {p99:.3f} ms ({len(values)} jobs)")  # fmt: skip
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
        server.kill()
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
