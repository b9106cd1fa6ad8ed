"""Scrape-time probes: queue depth in one round trip per queue."""

from __future__ import annotations

import time
from pathlib import Path

from redkeep.queue.base import JobQueue
from redkeep.queue.job import STATUSES, JobStatus
from redkeep.queue.redis import RedisJobQueue
from redkeep.queue.scripts import load_script

__all__ = ["QUEUE_DEPTH", "pool_in_use", "queue_depth"]

QUEUE_DEPTH = load_script(Path(__file__).with_name("queue_depth.lua"))


async def queue_depth(queue: JobQueue) -> tuple[dict[str, int], float | None]:
    """Jobs per status (``outbox``: held in the enqueue outbox) and the age in seconds of the
    job at the head of the waiting queue (the oldest of the highest waiting priority; None when
    nothing waits).

    On Redis this is one script call (one round trip, server clock); in memory it reads the
    queue directly.
    """
    if isinstance(queue, RedisJobQueue):
        await queue.register()
        reply = await queue.client.evalsha(QUEUE_DEPTH, queue.keys.names(QUEUE_DEPTH.keys), [])
        n = len(STATUSES)
        counts = {s: int(c) for s, c in zip(STATUSES, reply[:n], strict=True)}
        counts["outbox"] = await queue.outbox.count(queue.name) if queue.outbox else 0
        age_ms = int(reply[n])
        return counts, (age_ms / 1000.0 if age_ms >= 0 else None)
    counts = await queue.counts()
    head = await queue.list_jobs(JobStatus.WAITING, 0, 1)
    created = head[0].created_at if head else None
    return counts, (max(0.0, time.time() - created) if created is not None else None)


def pool_in_use(client: object) -> int | None:
    """Connections checked out of the client's pool, when the transport can tell.

    Uses ``client.pool_in_use`` when the transport offers it; otherwise looks at redis-py's
    connection pool (standalone RESP only; best effort across redis-py 5.x-8.x).
    """
    explicit = getattr(client, "pool_in_use", None)
    if isinstance(explicit, int):
        return explicit
    pool = getattr(getattr(client, "_r", None), "connection_pool", None)
    in_use = getattr(pool, "_in_use_connections", None)
    try:
        return len(in_use) if in_use is not None else None
    except TypeError:
        return None
