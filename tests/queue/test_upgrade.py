"""A queue written by redkeep 0.1 (layout 1: one hash per job, plain-JSON payloads) keeps working:
the first operation of a RedisJobQueue converts it, exactly once also when several processes
start together. The old layout is written here directly, field by field, as 0.1 wrote it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from redkeep.queue import Job, JobStatus, RedisJobQueue
from redkeep.queue.job import STATUSES
from redkeep.queue.keys import V1Keys
from redkeep.redis.mux import MuxClient
from tests.queue.conftest import running, wait_status

NOW = 1_700_000_000_000  # ms


async def write_v1_job(
    client: Any, prefix: str, queue: str, job_id: str, score: float, **fields: Any
) -> None:
    """One job as redkeep 0.1 stored it: its hash and its entry in the status zset."""
    v1 = V1Keys(prefix, queue)
    record = {
        "id": job_id,
        "name": "work",
        "payload": "null",
        "status": "waiting",
        "priority": "0",
        "max_attempts": "3",
        "created": str(NOW),
        "run_at": str(NOW),
        **fields,
    }
    await client.hset(v1.job(job_id), {k: str(v) for k, v in record.items()})
    await client.zadd(v1.status_key(record["status"]), {job_id: score})


async def test_a_layout1_queue_is_converted_on_first_use(redis_url: str, prefix: str) -> None:
    client = MuxClient(redis_url)
    v1 = V1Keys(prefix, "legacy")
    try:
        seq = lambda prio, n: -prio * 1e12 + n  # noqa: E731 - 0.1's waiting score
        await write_v1_job(client, prefix, "legacy", "w-low", seq(0, 2), payload='{"n":2}')
        await write_v1_job(
            client,
            prefix,
            "legacy",
            "w-first",
            seq(0, 1),
            payload='{"__rk__":"not a tag","v":[1,2]}',
        )
        await write_v1_job(
            client,
            prefix,
            "legacy",
            "w-high",
            seq(5, 3),
            priority="5",
            backoff='[0.5,8.0,"fixed",false]',
            timeout="9.5",
        )
        await write_v1_job(
            client, prefix, "legacy", "d1", 2e12, status="delayed", run_at="2000000000000"
        )
        await write_v1_job(
            client,
            prefix,
            "legacy",
            "a1",
            NOW,
            status="active",
            attempts="1",
            token="4",
            started=str(NOW),
            worker="old-worker",
        )
        await write_v1_job(
            client,
            prefix,
            "legacy",
            "c1",
            NOW,
            status="completed",
            result='{"ok":[1,"x"]}',
            finished=str(NOW),
            attempts="1",
            token="1",
        )
        await write_v1_job(
            client,
            prefix,
            "legacy",
            "f1",
            NOW,
            status="failed",
            error='["KeyError","boom","tb"]',
            finished=str(NOW),
            attempts="3",
        )
        await write_v1_job(
            client,
            prefix,
            "legacy",
            "x1",
            NOW,
            status="cancelled",
            finished=str(NOW),
            payload="{not json",
        )
        await client.zadd(v1.status_key("waiting"), {"ghost": seq(0, 9)})  # entry, no hash
        await client.set(v1.seq, "3")
        await client.zadd(f"{v1.tag}:marker", {"w": 0})
        await client.zadd(f"{v1.tag}:inbox:old-worker", {"[]": 0})

        q = RedisJobQueue(client, "legacy", key_prefix=prefix)
        counts = await q.counts()  # the first operation converts
        assert counts == {
            "blocked": 0,
            "waiting": 3,
            "delayed": 1,
            "active": 1,
            "completed": 1,
            "failed": 1,
            "cancelled": 1,
            "outbox": 0,  # no enqueue outbox here
        }
        waiting = [j.id for j in await q.list_jobs("waiting")]
        assert waiting == ["w-high", "w-first", "w-low"]  # order kept
        first = await q.get_job("w-first")
        assert first is not None and first.payload == {"__rk__": "not a tag", "v": [1, 2]}
        high = await q.get_job("w-high")
        assert high is not None and high.timeout == 9.5 and high.backoff is not None
        assert high.backoff.kind == "fixed" and high.priority == 5
        active = await q.get_job("a1")
        assert active is not None and (active.token, active.worker_id) == (4, "old-worker")
        done = await q.get_job("c1")
        assert done is not None and done.result == {"ok": [1, "x"]}
        assert done.finished_at == NOW / 1000
        failed = await q.get_job("f1")
        assert failed is not None and failed.error is not None and failed.error.type == "KeyError"
        broken = await q.get_job("x1")
        assert broken is not None and broken.payload_error is not None
        assert "cannot decode job payload" in broken.payload_error
        # nothing of layout 1 is left
        left = [k async for k in client.scan_iter(f"\\{{{prefix}:q:legacy\\}}:*")]
        assert left and all(":v2:" in k for k in left), [k for k in left if ":v2:" not in k]

        later = await q.enqueue("work", {"n": 3})  # FIFO continues after the old jobs
        ran: list[str] = []

        async def work(job: Job) -> Any:
            ran.append(job.id)
            return job.payload

        async with running(q, {"work": work}, concurrency=1, lease=5.0):
            await wait_status(q, later.id, "completed")
            # the old active job's lease (score NOW) expired long ago: it ran again
            again = await wait_status(q, "a1", "completed")
        # run order: priority, then FIFO; the recovered job was requeued by the first step
        assert ran == ["w-high", "w-first", "w-low", later.id, "a1"]
        assert again.attempts == 2 and again.error is not None
    finally:
        await client.close()


@pytest.mark.parametrize("processes", [4])
async def test_concurrent_upgrades_convert_each_job_once(
    redis_url: str, prefix: str, processes: int
) -> None:
    name = f"legacy-{uuid.uuid4().hex[:6]}"
    writer = MuxClient(redis_url)
    clients = [MuxClient(redis_url) for _ in range(processes)]
    try:
        jobs = 450
        for n in range(jobs):
            await write_v1_job(writer, prefix, name, f"j{n:04d}", float(n), payload=str(n))
        queues = [RedisJobQueue(c, name, key_prefix=prefix) for c in clients]
        await asyncio.gather(*(q.register() for q in queues))
        q = queues[0]
        counts = await q.counts()
        assert counts["waiting"] == jobs and sum(counts.values()) == jobs
        listed = [j.id for j in await q.list_jobs("waiting", 0, jobs)]
        assert listed == [f"j{n:04d}" for n in range(jobs)]
        assert await writer.execute("HLEN", q.keys.state) == jobs
        v1 = V1Keys(prefix, name)
        assert await writer.exists(*(v1.status_key(s) for s in STATUSES)) == 0
    finally:
        await writer.close()
        for c in clients:
            await c.close()


async def test_jobs_added_by_a_still_running_old_process_are_picked_up(
    redis_url: str, prefix: str
) -> None:
    client = MuxClient(redis_url)
    try:
        q = RedisJobQueue(client, "mixed", key_prefix=prefix)
        await q.enqueue("work", 1)
        # a redkeep 0.1 producer still running adds a job in its layout
        await write_v1_job(client, prefix, "mixed", "old-1", 5.0, payload="[1,2]")
        q._next_upgrade_check = 0.0  # a worker checks every minute: make it now

        async with running(q, {"work": lambda job: job.payload}):
            done = await wait_status(q, "old-1", "completed")
        assert done.result == [1, 2]
        assert done.status == JobStatus.COMPLETED
    finally:
        await client.close()
