"""HTTP service throughput: enqueue (POST) and read (GET) jobs over a real uvicorn.

Starts ``redkeep serve --no-worker`` on the memory backend once per target and round, sends
``--requests`` POSTs and then as many GETs from ``--concurrency`` client tasks, and prints the
median requests/s and latency percentiles over the rounds. Targets run interleaved, so an A/B
comparison sees the same machine noise::

    .venv/bin/python bench/http_bench.py                       # this checkout
    .venv/bin/python bench/http_bench.py --target main=/path/to/main/.venv/bin/python \\
        --target branch=.venv/bin/python --rounds 5

The client runs on the same machine as the server: compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(python: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDKEEP_", "UPSTASH_"))}
    env["REDKEEP_LOG_LEVEL"] = "WARNING"
    cmd = [python, "-m", "redkeep", "serve", "--no-worker", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).is_success:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{python}: the service did not start")


async def _phase(
    client: httpx.AsyncClient, requests: list[tuple[str, str, object]], concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = iter(requests)

    async def worker() -> None:
        for method, path, body in queue:
            start = time.perf_counter()
            r = await client.request(method, path, json=body)
            latencies.append(time.perf_counter() - start)
            r.raise_for_status()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(requests) / (time.perf_counter() - start), latencies


async def _round(port: int, n: int, concurrency: int) -> dict[str, tuple[float, list[float]]]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
        body = {"name": "echo", "payload": {"user": 42, "tags": ["a", "b"]}}
        await _phase(client, [("POST", "/v1/queues/bench/jobs", body)] * 50, concurrency)  # warm
        posts = [("POST", "/v1/queues/bench/jobs", body)] * n
        enqueue = await _phase(client, posts, concurrency)
        listed = (await client.get("/v1/queues/bench/jobs", params={"limit": 500})).json()
        ids = [j["id"] for j in listed["jobs"]]
        gets = [("GET", f"/v1/queues/bench/jobs/{ids[i % len(ids)]}", None) for i in range(n)]
        read = await _phase(client, gets, concurrency)
    return {"enqueue": enqueue, "get": read}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", action="append", help="NAME=PYTHON (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    targets = dict(t.split("=", 1) for t in args.target or [f"this={sys.executable}"])
    results: dict[str, dict[str, list[tuple[float, list[float]]]]] = {
        name: {"enqueue": [], "get": []} for name in targets
    }
    for _ in range(args.rounds):
        for name, python in targets.items():
            port = _free_port()
            proc = _start(python, port)
            try:
                for phase, value in asyncio.run(
                    _round(port, args.requests, args.concurrency)
                ).items():
                    results[name][phase].append(value)
            finally:
                proc.terminate()
                proc.wait(30)
    print(f"{args.rounds} rounds x {args.requests} requests, concurrency {args.concurrency}")
    print(f"{'target':<10} {'phase':<8} {'req/s (median)':>15} {'p50 ms':>8} {'p99 ms':>8}")
    for name, phases in results.items():
        for phase, runs in phases.items():
            rate = statistics.median(r for r, _ in runs)
            lat = sorted(x for _, lats in runs for x in lats)
            p50, p99 = lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000
            print(f"{name:<10} {phase:<8} {rate:>15.0f} {p50:>8.2f} {p99:>8.2f}")


if __name__ == "__main__":
    main()
