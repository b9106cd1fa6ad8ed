"""Sync API benchmark (not a test): ops/s of ``redkeep.sync`` caches next to raw redis-py sync +
json, measured in the same run.

Backends: ``raw`` (redis-py's blocking client + ``json``, the baseline), ``sync`` (a redkeep
sync cache with the default settings: fallback over Redis), ``sync_redis`` (plain Redis cache,
``cache_fallback=False``) and ``loop_thread`` (the design redkeep.sync rejected: the async cache
on an event loop in a thread of its own, called with ``run_coroutine_threadsafe``). Cases: get
hit and set of a 100 B value, get miss, get_many of 100 keys; each with one thread (``seq``,
operation i runs on every backend in turn, each call timed, so load from other processes hits
all alike) and with 16 threads sharing one client (``t16``, each backend in turn per round).

Redis: a private ``redis-server`` on a free loopback port (stopped by PID at the end), or
``REDKEEP_BENCH_REDIS_URL`` (keys get a unique prefix and are removed afterwards). Env:
``REDKEEP_BENCH_N`` ops per case and round (default 3000), ``REDKEEP_BENCH_REPEATS`` rounds
(default 5; medians are reported), ``REDKEEP_BENCH_ONLY`` (comma-separated backend names).

    .venv/bin/python bench/sync_bench.py
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import redis
from cache_bench import SMALL, start_redis

from redkeep import Settings
from redkeep.cache import FallbackCache, RedisCache
from redkeep.redis.mux import MuxClient
from redkeep.sync import SyncServices

N = int(os.environ.get("REDKEEP_BENCH_N", "3000"))
REPEATS = int(os.environ.get("REDKEEP_BENCH_REPEATS", "5"))
ONLY = {s for s in os.environ.get("REDKEEP_BENCH_ONLY", "").split(",") if s}
THREADS = 16
SLOTS = 1000
CASES = ["get_hit_100B", "get_miss", "set_100B", "get_many_100"]


class Raw:
    """redis-py's blocking client + json (a connection pool shared by the threads)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.r = redis.Redis.from_url(url)
        self.p = prefix + ":raw:"

    def get(self, k: str) -> Any:
        v = self.r.get(self.p + k)
        return None if v is None else json.loads(v)

    def set(self, k: str, v: Any) -> None:
        self.r.set(self.p + k, json.dumps(v))

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        values = self.r.mget([self.p + k for k in keys])
        return {k: json.loads(v) for k, v in zip(keys, values, strict=True) if v is not None}

    def close(self) -> None:
        self.r.close()


class Sync:
    """A redkeep.sync cache."""

    def __init__(self, url: str, prefix: str, *, fallback: bool) -> None:
        settings = Settings(redis_url=url, key_prefix=prefix, cache_fallback=fallback)
        self.services = SyncServices(settings).start()
        self.cache = self.services.cache("fb" if fallback else "plain")
        self.get, self.set, self.get_many = self.cache.get, self.cache.set, self.cache.get_many

    def close(self) -> None:
        self.services.close()


class LoopThread:
    """The async FallbackCache on a loop thread of its own, called from other threads."""

    def __init__(self, url: str, prefix: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def make() -> tuple[MuxClient, FallbackCache]:
            client = MuxClient(url)
            return client, FallbackCache(RedisCache(client, "thread", key_prefix=prefix))

        self.client, self.cache = self._run(make())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def get(self, k: str) -> Any:
        return self._run(self.cache.get(k))

    def set(self, k: str, v: Any) -> None:
        self._run(self.cache.set(k, v))

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        return self._run(self.cache.get_many(keys))  # type: ignore[no-any-return]

    def close(self) -> None:
        self._run(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def make_backends(url: str, prefix: str) -> dict[str, Callable[[], Any]]:
    return {
        "raw": lambda: Raw(url, prefix),
        "sync": lambda: Sync(url, prefix, fallback=True),
        "sync_redis": lambda: Sync(url, prefix, fallback=False),
        "loop_thread": lambda: LoopThread(url, prefix),
    }


def one_op(lib: Any, case: str) -> Callable[[int], bool]:
    if case == "set_100B":

        def op(i: int) -> bool:
            lib.set(f"s:{i % SLOTS}", SMALL)
            return True

    elif case == "get_hit_100B":

        def op(i: int) -> bool:
            return lib.get(f"s:{i % SLOTS}") is not None

    elif case == "get_miss":

        def op(i: int) -> bool:
            return lib.get(f"miss:{i}") is None

    else:
        batches = [[f"s:{(j * 100 + x) % SLOTS}" for x in range(100)] for j in range(10)]

        def op(i: int) -> bool:
            return len(lib.get_many(batches[i % 10])) == 100

    return op


def run_seq_interleaved(libs: dict[str, Any], case: str, order: list[str]) -> dict[str, float]:
    ops = [(name, one_op(libs[name], case)) for name in order]
    spent = dict.fromkeys(order, 0.0)
    n = N // 10 if case == "get_many_100" else N
    clock = time.perf_counter
    for i in range(n):
        for name, op in ops:
            start = clock()
            ok = op(i)
            spent[name] += clock() - start
            if not ok:
                raise RuntimeError(f"{name} {case}: wrong result")
    return {name: n / spent[name] for name in order}


def run_threads(lib: Any, case: str) -> float:
    op = one_op(lib, case)
    n = N // 10 if case == "get_many_100" else N
    per = n // THREADS
    bad: list[int] = []

    def worker(t: int) -> None:
        for i in range(t * per, (t + 1) * per):
            if not op(i):
                bad.append(i)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if bad:
        raise RuntimeError(f"{case}: {len(bad)} wrong results")
    return per * THREADS / elapsed


def bench_all(factories: dict[str, Callable[[], Any]]) -> dict[str, dict[str, list[float]]]:
    libs = {name: factory() for name, factory in factories.items()}
    results: dict[str, dict[str, list[float]]] = {name: {} for name in libs}
    try:
        for lib in libs.values():
            for i in range(SLOTS):
                lib.set(f"s:{i}", SMALL)
        order = list(libs)
        for tag in ("seq", "t16"):
            for case in CASES:
                print(f"  {case}_{tag}", file=sys.stderr)
                for r in range(REPEATS):
                    rotated = order[r % len(order) :] + order[: r % len(order)]
                    if tag == "seq":
                        rates = run_seq_interleaved(libs, case, rotated)
                    else:
                        rates = {name: run_threads(libs[name], case) for name in rotated}
                    for name, rate in rates.items():
                        results[name].setdefault(f"{case}_{tag}", []).append(rate)
    finally:
        for lib in libs.values():
            lib.close()
    return results


def cleanup_keys(url: str, prefix: str) -> None:
    with redis.Redis.from_url(url) as r:
        batch = list(r.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(batch), 500):
            r.unlink(*batch[i : i + 500])


def render(all_results: dict[str, dict[str, list[float]]]) -> str:
    lines = []
    for tag, label in (("seq", "1 thread"), ("t16", f"{THREADS} threads")):
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


def main() -> None:
    url = os.environ.get("REDKEEP_BENCH_REDIS_URL")
    proc = None
    workdir = None
    if not url:
        proc, url, workdir = start_redis()
    prefix = f"rkbench:{uuid.uuid4().hex[:8]}"
    try:
        backends = make_backends(url, prefix)
        chosen = {n: f for n, f in backends.items() if not ONLY or n in ONLY}
        all_results = bench_all(chosen)
        cleanup_keys(url, prefix)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"redkeep sync benchmark: N={N} ops/case, {REPEATS} repeats, python "
        f"{sys.version.split()[0]}, redis-py {version('redis')}"
    )
    print(render(all_results))
    out = os.environ.get("REDKEEP_BENCH_JSON")
    if out:
        with open(out, "w", encoding="utf-8") as f:
            json.dump(all_results, f, indent=1)


if __name__ == "__main__":
    main()
