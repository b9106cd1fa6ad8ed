"""A worker process for the reliability scenarios: ``python -m tests.reliability.worker_proc``.

It runs a real :class:`~redkeep.queue.Worker` on a :class:`~redkeep.queue.RedisJobQueue` with
one handler, ``record``: it counts the run in the hash ``--runs-key`` (HINCRBY job id) *before*
sleeping ``--job-seconds``, so a run cut short by SIGKILL still shows up as a run and a re-run
shows up as a duplicate. It prints :data:`~tests.reliability.processes.READY_LINE` when it is
about to start working and stops gracefully on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio

from redkeep.queue import Job, RedisJobQueue
from redkeep.redis.mux import MuxClient
from tests.reliability.child import main, run_worker, worker_parser


async def run(args: argparse.Namespace) -> None:
    client = MuxClient(args.url, command_timeout=args.command_timeout)
    queue = RedisJobQueue(client, args.queue, key_prefix=args.key_prefix, max_attempts=1000)

    async def record(job: Job) -> int:
        runs = int(await client.execute("HINCRBY", args.runs_key, job.id, 1))
        await asyncio.sleep(args.job_seconds)
        return runs

    await run_worker(client, queue, {"record": record}, args)


def parser() -> argparse.ArgumentParser:
    p = worker_parser(10, job_seconds=0.2, runs_key=True)
    p.add_argument("--command-timeout", type=float, default=2.0)
    return p


if __name__ == "__main__":
    main(run, parser())
