"""A worker process for the fan-in crash test: ``python -m tests.reliability.fanin_proc``.

Handlers: ``part`` counts its run in the hash ``--runs-key`` (HINCRBY job id) before sleeping
``--job-seconds``, then returns ``2 * payload``; ``fanin`` counts its run the same way and
returns how many parent results it got and their sum. Prints
:data:`~tests.reliability.processes.READY_LINE` when it starts working.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from redkeep.queue import Job, RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient
from tests.reliability.processes import READY_LINE


async def main(args: argparse.Namespace) -> None:
    client = MuxClient(args.url)
    queue = RedisJobQueue(client, args.queue, key_prefix=args.key_prefix)

    async def part(job: Job) -> int:
        await client.execute("HINCRBY", args.runs_key, job.id, 1)
        await asyncio.sleep(args.job_seconds)
        return 2 * int(job.payload)

    async def fanin(job: Job) -> dict[str, Any]:
        await client.execute("HINCRBY", args.runs_key, job.id, 1)
        results = job.parent_results or {}
        values = list(results.values())
        return {"n": len(values), "sum": sum(v or 0 for v in values), "none": values.count(None)}

    worker = Worker(
        queue, {"part": part, "fanin": fanin}, concurrency=args.concurrency, lease=args.lease,
        grace_period=1.0,
    )  # fmt: skip
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
    p.add_argument("--runs-key", required=True)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--lease", type=float, default=2.0)
    p.add_argument("--job-seconds", type=float, default=0.1)
    return p.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(parse()))
