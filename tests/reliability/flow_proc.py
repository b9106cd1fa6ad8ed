"""A worker process for the flow-control scenarios: ``python -m tests.reliability.flow_proc``.

It runs a real :class:`~redkeep.queue.Worker` with one handler, ``work``, which records each
start in the list ``<prefix>:starts`` as ``"<wall time> <claim time> <job id> <group>"`` (claim
time: ``job.started_at``, the server clock when the job was claimed), counts the jobs of its
group running at once (``HINCRBY <prefix>:active <group>``, each level reached pushed to
``<prefix>:levels``), sleeps ``payload["sleep"]`` seconds, then counts itself out. It prints
:data:`~tests.reliability.processes.READY_LINE` once started and stops gracefully on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from redkeep.queue import Job, RedisJobQueue
from redkeep.redis.mux import MuxClient
from tests.reliability.child import main, run_worker, worker_parser


async def run(args: argparse.Namespace) -> None:
    client = MuxClient(args.url)
    queue = RedisJobQueue(client, args.queue, key_prefix=args.key_prefix, max_attempts=1000)
    starts, active, levels = (f"{args.key_prefix}:{k}" for k in ("starts", "active", "levels"))

    async def work(job: Job) -> None:
        group = getattr(job, "group", None) or "-"
        line = f"{time.time():.6f} {job.started_at or 0:.3f} {job.id} {group}"
        await client.execute("RPUSH", starts, line)
        if group != "-":
            level = int(await client.execute("HINCRBY", active, group, 1))
            await client.execute("RPUSH", levels, f"{group} {level}")
        try:
            await asyncio.sleep(float((job.payload or {}).get("sleep", 0)))
        finally:
            if group != "-":
                await client.execute("HINCRBY", active, group, -1)

    await run_worker(client, queue, {"work": work}, args, prefetch=args.prefetch)


def parser() -> argparse.ArgumentParser:
    p = worker_parser(10)
    p.add_argument("--prefetch", type=int, default=0)
    return p


if __name__ == "__main__":
    main(run, parser())
