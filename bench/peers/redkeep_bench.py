"""redkeep peer for the shared queue benchmark (/work/shared/bench, see its README.md).

Worker: the real CLI, ``redkeep worker redkeep_bench:handlers -q bench --concurrency 10`` (and 50
in a second variant) on uvloop when installed (``redkeep[fast]``; the harness venv has it),
default settings (lease 30 s, retention of 10,000 completed jobs enforced by the scripts).
Enqueue: ``RedisJobQueue.enqueue`` one at a time, bulk with ``enqueue_many`` in chunks of
``common.CHUNK`` (one script call per 1,000 jobs), through a ``MuxClient`` with default settings
(one multiplexed connection, 200 µs busy-poll budget for a lone command).
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import version
from typing import Any

import common

from redkeep.queue import Job, JobSpec, RedisJobQueue
from redkeep.redis.mux import MuxClient


def _loop() -> str:
    """The loop ``redkeep worker`` runs on: uvloop when importable (see redkeep.cli._loop)."""
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


QUEUE = "bench"


async def noop(job: Job) -> None:
    await common.incr_async()


handlers: dict[str, Any] = {"noop": noop}


async def run_variant(concurrency: int) -> None:
    common.flushall()
    seq_client = MuxClient(common.SEQ_URL)
    client = MuxClient(common.URL)
    seq_q = RedisJobQueue(seq_client, QUEUE)
    q = RedisJobQueue(client, QUEUE)

    async def seq_one() -> None:
        await seq_q.enqueue("noop")

    async def main_enqueue(n: int) -> None:
        for k in common.chunks(n):
            await q.enqueue_many([JobSpec("noop")] * k)

    async def lat_one() -> None:
        await q.enqueue("noop")

    name = "redkeep" if concurrency == 10 else f"redkeep[concurrency={concurrency}]"
    await common.drive_async(
        name,
        f"redkeep {version('redkeep')} (redis-py {version('redis')})",
        seq_one=seq_one,
        main_enqueue=main_enqueue,
        worker_argv=[
            *("redkeep", "worker", "redkeep_bench:handlers", "-q", QUEUE),
            *("--concurrency", str(concurrency)),
        ],
        env_extra={"REDKEEP_REDIS_URL": common.URL, "REDKEEP_LOG_LEVEL": "WARNING"},
        lat_one=lat_one,
        worker_concurrency=f"concurrency={concurrency} (1 process, {_loop()}; default 10)",
        enqueue_api=f"enqueue_many in chunks of {common.CHUNK} (one Lua call per chunk)",
        notes="at-least-once with leases (30 s) + fencing; claims/acks batched per step script; "
        "completed retention 1 h / 10,000 enforced; enqueue client: default busy-poll 200 us, "
        "worker: busy-poll off (the `redkeep worker` default)",
    )
    await seq_client.close()
    await client.close()


async def main() -> None:
    await run_variant(10)
    await run_variant(50)


if __name__ == "__main__":
    common.arun(main)
