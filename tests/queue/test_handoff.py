"""Direct hand-off to an idle worker process: every handed-over job runs exactly once.

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

from redkeep.queue import RedisJobQueue
from redkeep.redis.mux import MuxClient
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

    async def next_run() -> str:
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            assert asyncio.get_running_loop().time() < deadline, "no job ran within 10 s"
            if message is not None and message["type"] == "pmessage":
                key = str(message["channel"]).split(":started:", 1)[1]
                runs[key] += 1
                return key

    proc = spawn_worker(server.url, prefix, "handoff", 30.0)
    try:
        await q.enqueue("work", {"sleep": 0})
        await next_run()
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
