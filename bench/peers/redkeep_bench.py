"""redkeep peer for the shared queue benchmark (/work/shared/bench, see its README.md).

Worker: the real CLI, ``redkeep worker redkeep_bench:handlers -q bench --concurrency 10`` (and 50
in a second variant) on uvloop when installed (``redkeep[fast]``; the harness venv has it),
default settings (lease 30 s, retention of 10,000 completed jobs enforced by the scripts).
Enqueue: ``RedisJobQueue.enqueue`` one at a time, bulk with ``enqueue_many`` in chunks of
``common.CHUNK`` (one script call per 1,000 jobs), through the client the settings build.

Variants, one result line each: ``redkeep`` and ``redkeep[concurrency=50]`` on the default
transport (``auto``: the multiplexed fast path, one connection, 200 µs busy-poll budget for a
lone command), and ``redkeep[transport=redis-py]`` on the reference transport (redis-py's
public API, concurrent commands coalesced into pipelines) for the driver and the worker alike.
``REDKEEP_BENCH_VARIANTS`` (e.g. ``mux:10,redis-py:10``) picks others.
"""

from __future__ import annotations

import importlib.util
import os
import time
from importlib.metadata import version
from typing import Any

import common
import redis

from redkeep.config import Settings
from redkeep.queue import Job, JobSpec, RedisJobQueue
from redkeep.redis.base import Script
from redkeep.redis.factory import create_redis_client


def _loop() -> str:
    """The loop ``redkeep worker`` runs on: uvloop when importable (see redkeep.cli._loop)."""
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


QUEUE = "bench"


async def noop(job: Job) -> None:
    await common.incr_async()


handlers: dict[str, Any] = {"noop": noop}


def _client(url: str, transport: str) -> Any:
    return create_redis_client(
        Settings(backend="redis", redis_url=url, redis_transport=transport)  # type: ignore[arg-type]
    )


FLOOR_N = 2000
NOOP_SCRIPT = Script("bench_noop", "return 1")


async def _per_s(call: Any, n: int = FLOOR_N) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        await call()
    return round(n / (time.perf_counter() - t0), 1)


def _script_usec(server: redis.Redis) -> float | None:
    """Server time per ``EVALSHA`` since the last ``CONFIG RESETSTAT`` (INFO commandstats)."""
    stat = server.info("commandstats").get("cmdstat_evalsha")
    return None if stat is None else float(stat["usec_per_call"])


async def run_variant(concurrency: int, transport: str = "auto") -> None:
    common.flushall()
    server = redis.Redis(host=common.HOST, port=common.PORT)
    server.config_resetstat()
    seq_client = _client(common.SEQ_URL, transport)
    client = _client(common.URL, transport)
    seq_q = RedisJobQueue(seq_client, QUEUE)
    q = RedisJobQueue(client, QUEUE)

    async def seq_one() -> None:
        await seq_q.enqueue("noop")

    async def main_enqueue(n: int) -> None:
        for k in common.chunks(n):
            await q.enqueue_many([JobSpec("noop")] * k)

    async def lat_one() -> None:
        await q.enqueue("noop")

    # What bounds the 1-by-1 phase, measured right after it on the same client: an awaited
    # round trip (GET of a missing key, a no-op script) and the enqueue script's server time.
    floor: dict[str, float | None] = {}

    async def after_seq() -> None:
        floor["enqueue_script_usec"] = _script_usec(server)
        floor["awaited_get_per_s"] = await _per_s(lambda: seq_client.get("bench:floor"))
        noop_script = lambda: seq_client.evalsha(NOOP_SCRIPT, [], [])  # noqa: E731
        floor["awaited_noop_script_per_s"] = await _per_s(noop_script)

    options = [] if concurrency == 10 else [f"concurrency={concurrency}"]
    if transport != "auto":
        options.append(f"transport={transport}")
    name = f"redkeep[{','.join(options)}]" if options else "redkeep"
    await common.drive_async(
        name,
        f"redkeep {version('redkeep')} (redis-py {version('redis')})",
        seq_one=seq_one,
        main_enqueue=main_enqueue,
        worker_argv=[
            *("redkeep", "worker", "redkeep_bench:handlers", "-q", QUEUE),
            *("--concurrency", str(concurrency)),
        ],
        env_extra={
            "REDKEEP_REDIS_URL": common.URL,
            "REDKEEP_REDIS_TRANSPORT": transport,
            "REDKEEP_LOG_LEVEL": "WARNING",
        },
        lat_one=lat_one,
        after_seq=after_seq,
        seq_floor=floor,
        worker_concurrency=f"concurrency={concurrency} (1 process, {_loop()}; default 10)",
        enqueue_api=f"enqueue_many in chunks of {common.CHUNK} (one Lua call per chunk)",
        notes=f"transport={client.transport}; at-least-once with leases (30 s) + fencing; "
        "claims/acks batched per step script; completed retention 1 h / 10,000 enforced; "
        "enqueue client: default busy-poll 200 us (mux), worker: busy-poll off (the `redkeep "
        "worker` default)",
    )
    await seq_client.close()
    await client.close()
    server.close()


VARIANTS = os.environ.get("REDKEEP_BENCH_VARIANTS", "auto:10,auto:50,redis-py:10")


async def main() -> None:
    for variant in VARIANTS.split(","):
        transport, _, concurrency = variant.partition(":")
        await run_variant(int(concurrency or 10), transport)


if __name__ == "__main__":
    common.arun(main)
