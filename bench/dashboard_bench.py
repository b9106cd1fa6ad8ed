"""Dashboard server time at scale: 100 queues holding 1,000,000 jobs on a private redis-server.

Fills a private redis-server (its own port, nothing on disk, stopped by PID at the end) with
``--queues`` queues of ``--jobs`` jobs in all (waiting, a tenth delayed, a few failed), then
renders the dashboard's pages in-process (the ASGI app through httpx, no network) ``--rounds``
times each and prints the median and worst server time per page. The overview's budget is
300 ms (issue 18): it reads each queue's counts (six ZCARDs) and never scans job keys::

    .venv/bin/python bench/dashboard_bench.py                  # 100 queues, 1,000,000 jobs
    .venv/bin/python bench/dashboard_bench.py --jobs 100000    # a quicker look

The fill takes a minute or two and about 1 GB of memory in the private server. On a shared
machine, quote medians and say so.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

import httpx

from redkeep.config import Settings
from redkeep.queue.job import JobSpec
from redkeep.queue.redis import RedisJobQueue
from redkeep.services import create_services
from redkeep.web.app import create_app

TOKEN = "dashboard-bench-token-0123456789"
BUDGET_MS = 300.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_redis(port: int, folder: str) -> subprocess.Popen[bytes]:
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", folder, "--maxmemory-policy", "noeviction"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


async def _fill(services: object, queues: int, jobs: int) -> list[str]:
    svc = services  # Services
    names = [f"queue-{i:03d}" for i in range(queues)]
    per_queue = jobs // queues
    start = time.perf_counter()
    for name in names:
        q = svc.queue_view(name)  # type: ignore[attr-defined]
        assert isinstance(q, RedisJobQueue)
        for offset in range(0, per_queue, 5000):
            n = min(5000, per_queue - offset)
            specs = [
                JobSpec(f"task-{i % 7}", {"n": offset + i}, delay=3600 if i % 10 == 0 else None)
                for i in range(n)
            ]
            await q.enqueue_many(specs)
    print(f"filled {queues} queues with {per_queue * queues:,} jobs in "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    return names


async def _time(client: httpx.AsyncClient, path: str, rounds: int) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        r = await client.get(path)
        samples.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, (path, r.status_code)
    return statistics.median(samples), max(samples)


async def main(args: argparse.Namespace) -> None:
    folder = tempfile.mkdtemp(prefix="redkeep-dashboard-bench-")
    port = _free_port()
    redis = _start_redis(port, folder)
    try:
        settings = Settings(
            backend="redis",
            redis_url=f"redis://127.0.0.1:{port}/0",
            api_token=TOKEN,
            key_prefix="bench",
        )
        async with create_services(settings) as services:
            names = await _fill(services, args.queues, args.jobs)
            app = create_app(services)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                r = await c.post("/ui/login", json={"token": TOKEN})
                assert r.status_code == 200
                first = (await services.queue_view(names[0]).list_jobs("waiting", 0, 1))[0]
                pages = {
                    "overview": "/ui/",
                    "overview (live region)": "/ui/",
                    "queue, first page": f"/ui/queues/{names[0]}",
                    "queue, page at 9,000": f"/ui/queues/{names[0]}?offset=9000",
                    "queue, name filter": f"/ui/queues/{names[0]}?name=task-3",
                    "job": f"/ui/queues/{names[0]}/jobs/{first.id}",
                }
                print(f"{'page':<24} {'median ms':>10} {'worst ms':>10}")
                for label, path in pages.items():
                    if "live" in label:
                        c.headers["X-Redkeep-Fragment"] = "queues"
                    median, worst = await _time(c, path, args.rounds)
                    c.headers.pop("X-Redkeep-Fragment", None)
                    print(f"{label:<24} {median:>10.1f} {worst:>10.1f}")
                    if label == "overview":
                        verdict = "within" if median < BUDGET_MS else "OVER"
                        print(f"{'':<24} {verdict} the {BUDGET_MS:.0f} ms budget")
    finally:
        redis.terminate()
        redis.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    asyncio.run(main(parser.parse_args()))
