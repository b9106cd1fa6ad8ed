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
import logging

from redkeep.queue import Job, RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient
from tests.reliability.processes import READY_LINE


async def main(args: argparse.Namespace) -> None:
    client = MuxClient(args.url, command_timeout=args.command_timeout)
    queue = RedisJobQueue(client, args.queue, key_prefix=args.key_prefix, max_attempts=1000)

    async def record(job: Job) -> int:
        runs = int(await client.execute("HINCRBY", args.runs_key, job.id, 1))
        await asyncio.sleep(args.job_seconds)
        return runs

    worker = Worker(
        queue,
        {"record": record},
        concurrency=args.concurrency,
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
    p.add_argument("--runs-key", required=True)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--lease", type=float, default=2.0)
    p.add_argument("--job-seconds", type=float, default=0.2)
    p.add_argument("--command-timeout", type=float, default=2.0)
    return p.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(parse()))
