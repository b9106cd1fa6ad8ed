"""A worker process for the fan-in crash test: ``python -m tests.reliability.fanin_proc``.

Handlers: ``part`` counts its run in the hash ``--runs-key`` (HINCRBY job id) before sleeping
``--job-seconds``, then returns ``2 * payload``; ``fanin`` counts its run the same way and
returns how many parent results it got and their sum. Prints
:data:`~tests.reliability.processes.READY_LINE` when it starts working.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from redkeep.queue import Job, RedisJobQueue
from redkeep.redis.mux import MuxClient
from tests.reliability.child import main, run_worker, worker_parser


async def run(args: argparse.Namespace) -> None:
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

    await run_worker(client, queue, {"part": part, "fanin": fanin}, args)


if __name__ == "__main__":
    main(run, worker_parser(20, job_seconds=0.1, runs_key=True))
