"""Cache benchmark (not a test): ops/s of redkeep's caches next to raw redis-py + json.

Cases: get hit (100 B and 10 KB values), get miss, set (100 B and 10 KB), get_many(100) - each
with 1 coroutine (``seq``) and 50 concurrent coroutines (``c50``) sharing one cache object.
Backends: raw redis-py asyncio + json (the baseline), redkeep MemoryCache, RedisCache and
FallbackCache (healthy Redis). Values are the same dicts as the shared peer harness uses.

Redis: a private ``redis-server`` on a free loopback port (no persistence), stopped by PID at the
end; or ``REDKEEP_BENCH_REDIS_URL`` (keys get a unique prefix and are removed afterwards; never
FLUSHDB). Env: ``REDKEEP_BENCH_N`` ops per case and round (default 3000; get_many does N/10
calls), ``REDKEEP_BENCH_REPEATS`` rounds (default 5; medians are reported),
``REDKEEP_BENCH_ONLY`` (comma-separated backend names: raw, raw_blocking_pool, memory, redis,
fallback; ``raw_blocking_pool`` is raw redis-py on a ``BlockingConnectionPool`` of 50).
Backends are measured interleaved so that load from other processes on a shared machine
affects all of them alike: with 1 coroutine, operation i runs on every backend in turn (each
call timed); with 50 coroutines, every round runs each backend once, in rotating order.

    .venv/bin/python bench/cache_bench.py
    /tmp/redkeep-peer-bench/.venv/bin/python bench/cache_bench.py   # redis-py 5.3.1

For the comparison with aiocache and cashews use the shared harness with
``bench/redkeep_cache_peer.py`` (see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import json
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
from importlib.metadata import version
from typing import Any

import redis.asyncio as aredis

from redkeep.cache import FallbackCache, MemoryCache, RedisCache
from redkeep.redis.mux import MuxClient

N = int(os.environ.get("REDKEEP_BENCH_N", "3000"))
REPEATS = int(os.environ.get("REDKEEP_BENCH_REPEATS", "5"))
ONLY = {s for s in os.environ.get("REDKEEP_BENCH_ONLY", "").split(",") if s}
CONC = 50
SLOTS = 1000
SMALL = {
    "id": 123456,
    "name": "benchmark-user",
    "email": "user@example.com",
    "active": True,
    "score": 12.5,
    "tags": ["a", "b"],
}
BIG = {"items": [{"i": i, "name": f"item-{i:05d}", "value": "v" * 60} for i in range(110)]}
CASES = ["get_hit_100B", "get_hit_10KB", "get_miss", "set_100B", "set_10KB", "get_many_100"]


class Raw:
    """redis-py asyncio + json, as in the harness's raw peer (keys prefixed here)."""

    name = "raw redis-py+json"

    def __init__(self, url: str, prefix: str) -> None:
        self.r = aredis.Redis.from_url(url)
        self.p = prefix + ":raw:"

    async def get(self, k: str) -> Any:
        v = await self.r.get(self.p + k)
        return None if v is None else json.loads(v)

    async def set(self, k: str, v: Any) -> None:
        await self.r.set(self.p + k, json.dumps(v))

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        values = await self.r.mget([self.p + k for k in keys])
        return {k: json.loads(v) for k, v in zip(keys, values, strict=True) if v is not None}

    async def close(self) -> None:
        await self.r.aclose()


class RawBlockingPool(Raw):
    """Raw redis-py + json on a bounded ``BlockingConnectionPool`` of 50: what bounding
    redis-py's pool costs per command (MuxClient multiplexes instead; see docs/benchmarks.md)."""

    name = "raw redis-py+json, BlockingConnectionPool(50)"

    def __init__(self, url: str, prefix: str) -> None:
        pool = aredis.BlockingConnectionPool.from_url(url, max_connections=50, timeout=2.0)
        self.r = aredis.Redis(connection_pool=pool)
        self.p = prefix + ":rawblk:"


def make_backends(url: str, prefix: str) -> dict[str, Callable[[], Any]]:
    def redis_cache() -> Any:
        client = MuxClient(url)
        cache = RedisCache(client, "bench", key_prefix=prefix)
        cache._bench_client = client  # type: ignore[attr-defined]
        return cache

    def fallback_cache() -> Any:
        client = MuxClient(url)
        cache = FallbackCache(RedisCache(client, "bench", key_prefix=prefix))
        cache._bench_client = client  # type: ignore[attr-defined]
        return cache

    return {
        "raw": lambda: Raw(url, prefix),
        "raw_blocking_pool": lambda: RawBlockingPool(url, prefix),
        "memory": lambda: MemoryCache("bench", max_entries=100_000),
        "redis": redis_cache,
        "fallback": fallback_cache,
    }


async def close(lib: Any) -> None:
    await lib.close()
    client = getattr(lib, "_bench_client", None)
    if client is not None:
        await client.close()


def one_op(lib: Any, case: str) -> Callable[[int], Awaitable[bool]]:
    if case.startswith("set"):
        val, pre = (SMALL, "s") if case.endswith("100B") else (BIG, "b")

        async def op(i: int) -> bool:
            await lib.set(f"{pre}:{i % SLOTS}", val)
            return True

    elif case.startswith("get_hit"):
        pre = "s" if case.endswith("100B") else "b"

        async def op(i: int) -> bool:
            return (await lib.get(f"{pre}:{i % SLOTS}")) is not None

    elif case == "get_miss":

        async def op(i: int) -> bool:
            return (await lib.get(f"miss:{i}")) is None

    else:
        batches = [[f"s:{(j * 100 + x) % SLOTS}" for x in range(100)] for j in range(10)]

        async def op(i: int) -> bool:
            return len(await lib.get_many(batches[i % 10])) == 100

    return op


async def run_case(lib: Any, case: str, conc: int) -> float:
    op = one_op(lib, case)
    n = N // 10 if case == "get_many_100" else N
    per = n // conc
    bad = 0

    async def worker(c: int) -> None:
        nonlocal bad
        for i in range(c * per, (c + 1) * per):
            if not await op(i):
                bad += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in range(conc)))
    elapsed = time.perf_counter() - start
    if bad:
        raise RuntimeError(f"{case}: {bad} wrong results")
    return per * conc / elapsed


async def prepare(lib: Any) -> None:
    for i in range(SLOTS):  # fill the slots the hit cases read
        await lib.set(f"s:{i}", SMALL)
        await lib.set(f"b:{i}", BIG)
    for i in range(200):  # warm-up
        await lib.get(f"s:{i}")


async def run_seq_interleaved(
    libs: dict[str, Any], case: str, order: list[str]
) -> dict[str, float]:
    """One coroutine; operation i runs on every backend in turn, each call timed on its own,
    so bursts of load from other processes hit all backends alike."""
    ops = [(name, one_op(libs[name], case)) for name in order]
    spent = dict.fromkeys(order, 0.0)
    n = N // 10 if case == "get_many_100" else N
    clock = time.perf_counter
    for i in range(n):
        for name, op in ops:
            start = clock()
            ok = await op(i)
            spent[name] += clock() - start
            if not ok:
                raise RuntimeError(f"{name} {case}: wrong result")
    return {name: n / spent[name] for name in order}


async def bench_all(factories: dict[str, Callable[[], Any]]) -> dict[str, dict[str, list[float]]]:
    """Interleaved measurement (see run_seq_interleaved; with 50 coroutines each round runs
    every backend once, in rotating order)."""
    libs = {name: factory() for name, factory in factories.items()}
    results: dict[str, dict[str, list[float]]] = {name: {} for name in libs}
    try:
        for lib in libs.values():
            await prepare(lib)
        order = list(libs)
        for conc, tag in ((1, "seq"), (CONC, "c50")):
            for case in CASES:
                print(f"  {case}_{tag}", file=sys.stderr)
                for r in range(REPEATS):
                    rotated = order[r % len(order) :] + order[: r % len(order)]
                    if conc == 1:
                        rates = await run_seq_interleaved(libs, case, rotated)
                    else:
                        rates = {name: await run_case(libs[name], case, conc) for name in rotated}
                    for name, rate in rates.items():
                        results[name].setdefault(f"{case}_{tag}", []).append(rate)
    finally:
        for lib in libs.values():
            await close(lib)
    return results


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis() -> tuple[subprocess.Popen[bytes], str, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found on PATH")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="redkeep-bench-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0", workdir
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    sys.exit("private redis-server did not start")


async def cleanup_keys(url: str, prefix: str) -> None:
    r = aredis.Redis.from_url(url)
    try:
        batch = [k async for k in r.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(batch), 500):
            await r.unlink(*batch[i : i + 500])
    finally:
        await r.aclose()


def render(all_results: dict[str, dict[str, list[float]]]) -> str:
    lines = []
    for tag, label in (("seq", "1 coroutine"), ("c50", "50 coroutines")):
        lines.append(f"\n### {label} (ops/s, median of {REPEATS}; get_many_100 = calls/s)\n")
        lines.append("| backend | " + " | ".join(CASES) + " |")
        lines.append("|---|" + "---|" * len(CASES))
        raw = all_results.get("raw")
        for name, res in all_results.items():
            cells = []
            for case in CASES:
                med = statistics.median(res[f"{case}_{tag}"])
                cell = f"{med:,.0f}"
                if raw is not None and name != "raw":
                    cell += f" ({med / statistics.median(raw[f'{case}_{tag}']):.2f}x)"
                cells.append(cell)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def amain(url: str) -> None:
    prefix = f"rkbench:{uuid.uuid4().hex[:8]}"
    backends = make_backends(url, prefix)
    chosen = {n: f for n, f in backends.items() if not ONLY or n in ONLY}
    try:
        all_results = await bench_all(chosen)
    finally:
        await cleanup_keys(url, prefix)
    print(
        f"redkeep cache benchmark: N={N} ops/case, {REPEATS} repeats, python "
        f"{sys.version.split()[0]}, redis-py {version('redis')}, "
        f"loop={'uvloop' if 'uvloop' in sys.modules else 'asyncio'}"
    )
    print(render(all_results))
    out = os.environ.get("REDKEEP_BENCH_JSON")
    if out:
        with open(out, "w", encoding="utf-8") as f:
            json.dump(all_results, f, indent=1)


def main() -> None:
    url = os.environ.get("REDKEEP_BENCH_REDIS_URL")
    proc = None
    workdir = None
    if not url:
        proc, url, workdir = start_redis()
    try:
        try:
            import uvloop

            uvloop.run(amain(url))
        except ImportError:
            asyncio.run(amain(url))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
