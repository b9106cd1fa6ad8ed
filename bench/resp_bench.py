"""Transport benchmark (not a test): per-call cost of both transports next to raw redis-py.

Cases: GET and SET of a 100 B value, with 1 coroutine (``seq``) and 50 concurrent coroutines
(``c50``) sharing one client. Contenders: raw ``redis.asyncio.Redis`` on its default
``ConnectionPool`` (the baseline), redkeep's fast path ``MuxClient`` (one multiplexed
connection, per-command timeouts, retries) with its default busy-poll budget and with
``spin=0``, and the reference ``RedisPyClient`` (redis-py's public API, concurrent commands
coalesced into pipelines). All decode replies to ``str``.

A private ``redis-server`` (no persistence) runs on a free loopback port and is stopped by PID
at the end. Rounds are interleaved so load from other processes hits both alike: with 1
coroutine, operation i runs on each client in turn (each call timed); with 50 coroutines,
every round runs each client once, in rotating order. Medians over the rounds are reported.
Env: ``REDKEEP_BENCH_N`` ops per case and round (default 5000), ``REDKEEP_BENCH_REPEATS``
rounds (default 9, at least 7 recommended).

    .venv/bin/python bench/resp_bench.py
    PYTHONPATH=src /tmp/redkeep-peer-bench/.venv/bin/python bench/resp_bench.py  # redis-py 5.3.1
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
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

import redis.asyncio as aredis

from redkeep.redis.mux import MuxClient
from redkeep.redis.redispy import RedisPyClient

N = int(os.environ.get("REDKEEP_BENCH_N", "5000"))
REPEATS = int(os.environ.get("REDKEEP_BENCH_REPEATS", "9"))
CONC = 50
VALUE = "v" * 100
CASES = ["get_100B", "set_100B"]
Op = Callable[[str], Awaitable[Any]]


def ops(client: Any, case: str) -> Op:
    """The bound method one case calls with a key."""
    if case == "get_100B":
        return client.get  # type: ignore[no-any-return]

    async def set_op(key: str) -> Any:
        return await client.set(key, VALUE)

    return set_op


async def run_seq(clients: dict[str, Any], case: str) -> dict[str, float]:
    """1 coroutine: op i on every client in turn; ops/s from the summed call times."""
    fns = {name: ops(c, case) for name, c in clients.items()}
    spent = dict.fromkeys(fns, 0.0)
    clock = time.perf_counter
    for i in range(N):
        key = f"rb:{i % 1000}"
        for name, fn in fns.items():
            start = clock()
            await fn(key)
            spent[name] += clock() - start
    return {name: N / s for name, s in spent.items()}


async def run_conc(client: Any, case: str) -> float:
    """50 coroutines sharing ``client``, N ops in total; ops/s."""
    fn = ops(client, case)
    per = N // CONC

    async def worker(w: int) -> None:
        for i in range(per):
            await fn(f"rb:{(w * per + i) % 1000}")

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(CONC)))
    return per * CONC / (time.perf_counter() - start)


async def bench(url: str) -> dict[str, dict[str, list[float]]]:
    raw = aredis.Redis.from_url(url, decode_responses=True)
    resp = MuxClient(url, max_connections=CONC)
    parked = MuxClient(url, max_connections=CONC, spin=0)
    reference = RedisPyClient(url, max_connections=CONC)
    clients: dict[str, Any] = {
        "raw redis-py": raw,
        "MuxClient": resp,
        "MuxClient spin=0": parked,
        "RedisPyClient": reference,
    }
    results: dict[str, dict[str, list[float]]] = {n: {} for n in clients}
    try:
        for key in (f"rb:{i}" for i in range(1000)):
            await raw.set(key, VALUE)
        for c in clients.values():  # warm both pools to 50 connections
            await asyncio.gather(*(c.get("rb:0") for _ in range(CONC)))
        names = list(clients)
        for r in range(REPEATS):
            for case in CASES:
                for name, ops_s in (await run_seq(clients, case)).items():
                    results[name].setdefault(f"{case} seq", []).append(ops_s)
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    ops_s = await run_conc(clients[name], case)
                    results[name].setdefault(f"{case} c50", []).append(ops_s)
    finally:
        await raw.aclose()
        await resp.close()
        await parked.close()
        await reference.close()
    return results


def render(results: dict[str, dict[str, list[float]]]) -> str:
    cols = list(next(iter(results.values())))
    base = {c: statistics.median(v) for c, v in results["raw redis-py"].items()}
    lines = ["| client | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, cases in results.items():
        cells = []
        for c in cols:
            med = statistics.median(cases[c])
            ratio = "" if name == "raw redis-py" else f" ({med / base[c]:.2f}x)"
            cells.append(f"{med:,.0f}{ratio}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis() -> tuple[subprocess.Popen[bytes], str, str]:
    binary = shutil.which("redis-server") or sys.exit("redis-server not found on PATH")
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="resp-bench-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", tmp]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0", tmp
        except OSError:
            time.sleep(0.05)
    proc.kill()
    shutil.rmtree(tmp, ignore_errors=True)
    sys.exit("private redis-server did not start")


def main() -> None:
    proc, url, tmp = start_redis()
    try:
        try:
            import uvloop

            results = uvloop.run(bench(url))
            loop = "uvloop"
        except ImportError:
            results = asyncio.run(bench(url))
            loop = "asyncio"
    finally:
        proc.terminate()  # by PID: only the server this script started
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"python {sys.version.split()[0]}, redis-py {version('redis')}, loop={loop}, "
        f"N={N}, rounds={REPEATS}, load={os.getloadavg()[0]:.1f}"
    )
    print(render(results))


if __name__ == "__main__":
    main()
