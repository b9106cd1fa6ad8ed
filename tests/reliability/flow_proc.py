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
import logging
import time

from redkeep.queue import Job, RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient
from tests.reliability.processes import READY_LINE


async def main(args: argparse.Namespace) -> None:
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

    worker = Worker(
        queue,
        {"work": work},
        concurrency=args.concurrency,
        prefetch=args.prefetch,
        lease=args.lease,
        grace_period=1.0,
    )
    print(READY_LINE, flush=True)
    try:
        await worker.run()
    finally:
        await client.close()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--key-prefix", required=True)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--prefetch", type=int, default=0)
    p.add_argument("--lease", type=float, default=2.0)
    return p.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(parse()))
