"""A real worker process for the schedule tests.

Usage: ``python schedule_worker.py URL KEY_PREFIX QUEUE``. Handler ``tick``: appends the job id
to the list ``<prefix>:ran``. The worker drives the queue's schedules like any worker.
"""

from __future__ import annotations

import asyncio
import sys

from redkeep.queue import Job, RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient


async def main() -> None:
    url, prefix, queue = sys.argv[1:4]
    client = MuxClient(url)
    q = RedisJobQueue(client, queue, key_prefix=prefix)

    async def tick(job: Job) -> None:
        await client.rpush(f"{prefix}:ran", job.id)

    try:
        await Worker(q, {"tick": tick}, lease=2.0, grace_period=0).run()
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
