"""A real worker process for the crash and fencing tests.

Usage: ``python worker_proc.py URL KEY_PREFIX QUEUE LEASE``. Handler ``work``: records
``<prefix>:started:<job id>:<attempt>`` = pid, sleeps ``payload["sleep"]`` seconds, returns
``{"pid": ..., "attempt": ...}``. Logs to stderr at INFO.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

from redkeep.queue import Job, RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient


async def main() -> None:
    url, prefix, queue, lease = sys.argv[1:5]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    client = MuxClient(url)
    q = RedisJobQueue(client, queue, key_prefix=prefix)

    async def work(job: Job) -> dict[str, Any]:
        await client.set(f"{prefix}:started:{job.id}:{job.attempts}", str(os.getpid()))
        await asyncio.sleep(float(job.payload["sleep"]))
        return {"pid": os.getpid(), "attempt": job.attempts}

    worker = Worker(q, {"work": work}, lease=float(lease), grace_period=0)
    try:
        await worker.run()
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
