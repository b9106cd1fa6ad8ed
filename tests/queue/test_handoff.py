"""Direct hand-off to idle workers: every handed-over job runs exactly once, a hand-off nobody
takes waits again without counting an attempt, a stopping worker strands nothing.

Regression: a job handed over by an enqueue was started twice when the worker's wait for
outcomes timed out in the same event-loop pass as its blocking pop returned the job (the pop's
done-callback and the idle loop both started it). A producer that enqueues the next job the
moment the previous one ran (what the latency benchmark does) hit it ~1-2% of the time.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import redis.asyncio as aredis

from redkeep.queue import Job, JobStatus, RedisJobQueue, Worker
from redkeep.queue.protocol import StepRequest
from redkeep.queue.redis_step import HANDOFF_TTL
from redkeep.redis.mux import MuxClient
from tests.queue.conftest import running, wait_until
from tests.support.redis_server import RedisServer

JOBS = 600


async def test_back_to_back_hand_offs_run_each_job_once(
    redis_server_factory: Any, spawn_worker: Any
) -> None:
    server: RedisServer = redis_server_factory()
    prefix = "rk-handoff"
    client = MuxClient(server.url)
    q = RedisJobQueue(client, "handoff", key_prefix=prefix)
    sub = aredis.Redis.from_url(server.url, decode_responses=True)
    await sub.config_set("notify-keyspace-events", "K$")  # one event per handler run
    pubsub = sub.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe(f"__keyspace@0__:{prefix}:started:*")
    runs: collections.Counter[str] = collections.Counter()

    async def next_run(timeout: float = 30.0) -> str:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            assert asyncio.get_running_loop().time() < deadline, f"no job ran within {timeout} s"
            if message is not None and message["type"] == "pmessage":
                key = str(message["channel"]).split(":started:", 1)[1]
                runs[key] += 1
                return key

    proc = spawn_worker(server.url, prefix, "handoff", 30.0)
    try:
        await q.enqueue("work", {"sleep": 0})
        await next_run(120.0)  # the worker process starts (slow on a loaded machine)
        for _ in range(JOBS):
            job = await q.enqueue("work", {"sleep": 0})
            while await next_run() != f"{job.id}:1":
                pass  # a late duplicate of an earlier job: counted, keep waiting
        while (message := await pubsub.get_message(timeout=0.5)) is not None:
            if message["type"] == "pmessage":
                runs[str(message["channel"]).split(":started:", 1)[1]] += 1
        assert len(runs) == JOBS + 1
        assert {k: n for k, n in runs.items() if n != 1} == {}
        assert b"stale outcome" not in proc.log_path.read_bytes()
    finally:
        await pubsub.aclose()
        await sub.aclose()
        await client.close()


# -- hand-off invariants (layout 2: one shared hand-off set on fixed keys) ---------------------


async def test_a_handed_job_nobody_takes_waits_again_without_counting_an_attempt(
    redis_url: str, prefix: str
) -> None:
    client = MuxClient(redis_url)
    q = RedisJobQueue(client, "handoff-orphan", key_prefix=prefix)
    try:
        await q.register()
        # a worker registered idle that never pops (it died, or became busy)
        await client.zadd(q.keys.idle, {"ghost": (await client.time() + 60) * 1000})
        stale = await q.enqueue("x", "handed, then not taken")
        assert stale.status == JobStatus.ACTIVE and stale.attempts == 1
        # 1. the hand-off's age passes HANDOFF_TTL: any step (here one claiming nothing) takes it
        #    back to waiting, its attempt not counted
        await asyncio.sleep(HANDOFF_TTL + 0.1)
        await q.step(StepRequest("busy", "r1", [], 0, 30.0))
        back = await q.get_job(stale.id)
        assert back is not None and (back.status, back.attempts) == ("waiting", 0)
        assert back.error is None and await client.zcard(q.keys.handoff) == 0
        # 2. its lease (the idle worker's) expires first: same outcome, through the lease reaper
        await q.step(StepRequest("taker", "r2", [], 1, 30.0))  # take the first job out of the way
        await client.hset(q.keys.meta, {"hlease": "100"})
        short = await q.enqueue("x", "handed with a short lease")
        assert short.status == JobStatus.ACTIVE
        await asyncio.sleep(0.2)
        await q.step(StepRequest("busy", "r3", [], 0, 30.0))
        again = await q.get_job(short.id)
        assert again is not None and (again.status, again.attempts) == ("waiting", 0)
        assert again.error is None
    finally:
        await client.close()


async def test_each_handed_job_is_started_by_exactly_one_of_several_idle_workers(
    redis_url: str, prefix: str
) -> None:
    client = MuxClient(redis_url)
    q = RedisJobQueue(client, "handoff-many", key_prefix=prefix)
    runs: collections.Counter[str] = collections.Counter()
    ran: dict[str, asyncio.Event] = {}
    workers: dict[str, str] = {}

    async def work(job: Job) -> None:
        runs[job.id] += 1
        workers[job.id] = job.worker_id or ""
        ran[job.id].set()

    try:
        async with running(q, {"w": work}), running(q, {"w": work}), running(q, {"w": work}):
            await wait_until(lambda: _is_at_least(client.zcard(q.keys.idle), 3))
            handed = 0
            for n in range(150):
                job_id = f"j{n}"
                ran[job_id] = asyncio.Event()
                job = await q.enqueue("w", job_id=job_id)
                handed += job.status == JobStatus.ACTIVE
                await asyncio.wait_for(ran[job_id].wait(), 10)
        assert set(runs.values()) == {1} and len(runs) == 150
        assert handed >= 100  # most went straight to an idle worker
        assert len(set(workers.values())) >= 2 and "" not in workers.values()
    finally:
        await client.close()


async def test_a_stopping_worker_leaves_nothing_stranded_while_another_is_idle(
    redis_url: str, prefix: str
) -> None:
    # Lease 30 s: a job stranded with the stopping worker would wait 30 s; each round must
    # finish in a few seconds, every job with a single attempt.
    client = MuxClient(redis_url)
    q = RedisJobQueue(client, "handoff-stop", key_prefix=prefix)
    done: set[str] = set()

    async def work(job: Job) -> None:
        done.add(job.id)

    try:
        async with running(q, {"w": work}, lease=30.0):  # the worker that stays
            for rnd in range(5):
                leaving = Worker(q, {"w": work}, lease=30.0, handle_signals=False)
                task = asyncio.create_task(leaving.run())
                await wait_until(lambda: _is_at_least(client.zcard(q.keys.idle), 2))
                ids = [f"r{rnd}-{n}" for n in range(20)]
                leaving.stop()
                for job_id in ids:  # enqueued while the other worker stops
                    await q.enqueue("w", job_id=job_id)
                await asyncio.wait_for(task, 15)
                await wait_until(lambda ids=ids: _true(set(ids) <= done), timeout=5)
        for job in await q.list_jobs("completed", 0, 200):
            assert job.attempts == 1, job
    finally:
        await client.close()


async def _is_at_least(value: Any, n: int) -> bool:
    return bool(await value >= n)


async def _true(value: bool) -> bool:
    return value


async def test_a_step_claiming_nothing_returns_hand_offs_when_no_worker_is_idle(
    redis_url: str, prefix: str
) -> None:
    """Regression: a worker stopping (or without a free slot) left the idle set with a job
    handed to it but not popped; with no other worker idle, the job stayed active (nobody's)
    until its hand-off TTL or lease ran out, and for good when no worker stepped again (the
    graceful-stop contract test found it under CPU load)."""
    client = MuxClient(redis_url)
    q = RedisJobQueue(client, "handoff-leaving", key_prefix=prefix)
    try:
        # w1 and w2 register idle (a step that claimed fewer jobs than it wanted)
        for worker in ("w1", "w2"):
            await q.step(StepRequest(worker, f"{worker}-r1", [], 1, 30.0, idle=30.0))
        handed = await q.enqueue("x", "handed while two workers are idle")
        assert handed.status == JobStatus.ACTIVE and await client.zcard(q.keys.handoff) == 1
        # w1 leaves (claims nothing): w2 is still idle and will pop it, so it stays handed
        await q.step(StepRequest("w1", "w1-r2", [], 0, 30.0))
        assert await client.zcard(q.keys.handoff) == 1
        # w2 leaves too: nobody idle is left, the hand-off waits again, attempt not counted
        left = await q.step(StepRequest("w2", "w2-r2", [], 0, 30.0))
        assert left.jobs == [] and left.more
        back = await q.get_job(handed.id)
        assert back is not None and (back.status, back.attempts) == ("waiting", 0)
        assert back.error is None and await client.zcard(q.keys.handoff) == 0
        assert await client.zcard(q.keys.active) == 0
        # the next worker runs it as attempt 1
        taken = await q.step(StepRequest("w3", "w3-r1", [], 1, 30.0))
        assert [(j.id, j.attempts) for j in taken.jobs] == [(handed.id, 1)]
    finally:
        await client.close()
