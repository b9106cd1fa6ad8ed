"""Queue inspection helpers shared by the scenarios (read-only, through the public API)."""

from __future__ import annotations

from redkeep.queue import JobQueue, JobStatus
from redkeep.redis.base import RedisClient


async def statuses(queue: JobQueue, limit: int = 1_000_000) -> dict[str, str]:
    """``{job id: status}`` of every job the queue holds, via ``list_jobs`` per status."""
    out: dict[str, str] = {}
    for status in JobStatus:
        for job in await queue.list_jobs(status, 0, limit):
            out[job.id] = status.value
    return out


async def run_counts(client: RedisClient, runs_key: str) -> dict[str, int]:
    """``{job id: runs}`` from the hash the ``record`` handler increments."""
    return {k: int(v) for k, v in (await client.hgetall(runs_key)).items()}


async def all_finished(queue: JobQueue, expected: int) -> bool:
    """True when ``expected`` jobs are completed and none waits, is delayed or active."""
    counts = await queue.counts()
    pending = counts["waiting"] + counts["delayed"] + counts["active"]
    return pending == 0 and counts["completed"] >= expected
