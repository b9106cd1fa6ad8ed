"""Job records damaged in Redis (written behind the queue's back) fail alone, with the reason."""

from __future__ import annotations

from typing import Any

import pytest

from redkeep.queue import Job, RedisJobQueue
from redkeep.redis.mux import MuxClient
from tests.queue.conftest import running, wait_status


@pytest.mark.parametrize(
    ("header", "payload", "reason"),
    [
        ('["{id}","work",null]', "{not json", "cannot decode job payload"),
        ('["{id}","work","soon"]', "1", "invalid job field 'timeout'"),
        ('["{id}","work",null,"[[["]', "1", "invalid job field 'backoff'"),
        ('["{id}","work"', "1", "invalid job data header"),
        ('["{id}","work",null,null,{"traceparent":7}]', "1", "invalid job field 'headers'"),
    ],
)
async def test_undecodable_record_fails_with_the_decode_error(
    redis_url: str, prefix: str, header: str, payload: str, reason: str
) -> None:
    client = MuxClient(redis_url)
    q = RedisJobQueue(client, "records", key_prefix=prefix)
    ran: list[Any] = []
    try:
        bad = await q.enqueue("work", {"ok": True}, max_attempts=3)
        good = await q.enqueue("work", {"ok": True})
        data = header.replace("{id}", bad.id) + "\n" + payload
        await client.hset(q.keys.data, {bad.id: data})  # the job's data record, damaged
        seen = await q.get_job(bad.id)
        assert seen is not None and seen.payload_error is not None and reason in seen.payload_error

        def work(job: Job) -> str:
            ran.append(job.id)
            return "ran"

        async with running(q, {"work": work}):
            failed = await wait_status(q, bad.id, "failed")
            assert (await wait_status(q, good.id, "completed")).result == "ran"
        assert failed.attempts == 1  # not retried: a retry cannot fix the record
        assert failed.error.type == "SerializationError" and reason in failed.error.message
        assert ran == [good.id]
    finally:
        await client.close()
