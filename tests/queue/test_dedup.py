"""Deduplication and debounce at enqueue (redkeep.queue.dedup), on every backend."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from redkeep.queue import InvalidJob, JobSpec, JobStatus
from redkeep.queue.job import MAX_DEDUP_KEY
from tests.queue.conftest import running, wait_status


async def test_dedup_returns_the_unfinished_job_and_writes_nothing(make_queue: Any) -> None:
    q = await make_queue()
    first = await q.enqueue("sync", {"n": 1}, dedup_key="user-7")
    again = await q.enqueue("sync", {"n": 2}, dedup_key="user-7", priority=9)
    assert again.id == first.id and again.payload == {"n": 1} and again.priority == 0
    assert again.dedup_key == "user-7"
    other = await q.enqueue("sync", {"n": 3}, dedup_key="user-8")
    assert other.id != first.id
    assert (await q.counts())["waiting"] == 2
    stored = await q.get_job(first.id)
    assert stored is not None and stored.dedup_key == "user-7" and stored.payload == {"n": 1}


async def test_dedup_without_ttl_holds_only_while_unfinished(make_queue: Any) -> None:
    q = await make_queue()
    first = await q.enqueue("x", 1, dedup_key="k")
    async with running(q, {"x": lambda job: "ok"}, concurrency=1):
        await wait_status(q, first.id, "completed")
    second = await q.enqueue("x", 2, dedup_key="k")
    assert second.id != first.id and second.payload == 2


async def test_dedup_ttl_holds_after_finish_then_expires(make_queue: Any) -> None:
    q = await make_queue()
    first = await q.enqueue("x", 1, dedup_key="k", dedup_ttl=1.0)
    assert await q.cancel(first.id)
    within = await q.enqueue("x", 2, dedup_key="k", dedup_ttl=1.0)
    assert within.id == first.id and within.status == JobStatus.CANCELLED
    await asyncio.sleep(1.1)
    after = await q.enqueue("x", 3, dedup_key="k", dedup_ttl=1.0)
    assert after.id != first.id and after.payload == 3


async def test_dedup_holds_past_ttl_while_unfinished(make_queue: Any) -> None:
    q = await make_queue()
    first = await q.enqueue("x", 1, dedup_key="k", dedup_ttl=0.2, delay=60)
    await asyncio.sleep(0.3)
    again = await q.enqueue("x", 2, dedup_key="k", dedup_ttl=0.2)
    assert again.id == first.id and again.status == JobStatus.DELAYED


async def test_dedup_in_one_batch_creates_one_job(make_queue: Any) -> None:
    q = await make_queue()
    jobs = await q.enqueue_many(
        [JobSpec("x", i, dedup_key="same") for i in range(5)] + [JobSpec("x", "free")]
    )
    assert len({j.id for j in jobs[:5]}) == 1 and jobs[5].id != jobs[0].id
    assert [j.payload for j in jobs[:5]] == [0] * 5
    assert (await q.counts())["waiting"] == 2


async def test_debounce_in_a_batch_that_adds_no_job(make_queue: Any) -> None:
    q = await make_queue()
    first = await q.enqueue("x", 1, dedup_key="d", debounce=30)
    await asyncio.sleep(0.05)
    specs = [JobSpec("x", 2, dedup_key="d", debounce=30), JobSpec("x", 9, job_id=first.id)]
    jobs = await q.enqueue_many(specs)
    assert {j.id for j in jobs} == {first.id}
    assert jobs[0].payload == 2 and jobs[0].run_at is not None and first.run_at is not None
    assert jobs[0].run_at > first.run_at
    stored = await q.get_job(first.id)
    assert stored is not None and stored.payload == 2 and stored.status == JobStatus.DELAYED
    assert stored.run_at is not None and first.run_at is not None
    assert stored.run_at > first.run_at
    assert [j.id for j in await q.list_jobs("delayed")] == [first.id]


async def test_dedup_with_20_concurrent_enqueuers(make_queue: Any) -> None:
    # four clients of one queue on Redis (one memory queue is one instance)
    n = 1 if make_queue.backend == "memory" else 4
    queues = [await make_queue(name="dedup-shared") for _ in range(n)]
    jobs = await asyncio.gather(
        *(queues[i % n].enqueue("x", i, dedup_key="once") for i in range(20))
    )
    assert len({j.id for j in jobs}) == 1
    assert (await queues[0].counts())["waiting"] == 1


async def test_debounce_replaces_the_pending_job(make_queue: Any) -> None:
    q = await make_queue()
    first = await q.enqueue("x", 1, dedup_key="d", debounce=5)
    assert first.status == JobStatus.DELAYED and first.dedup_key == "d"
    assert first.run_at is not None and first.created_at is not None
    assert 4.9 <= first.run_at - first.created_at <= 5.1
    await asyncio.sleep(0.2)
    second = await q.enqueue("y", 2, dedup_key="d", debounce=5, priority=3, timeout=7)
    assert second.id == first.id
    stored = await q.get_job(first.id)
    assert stored is not None
    assert (stored.name, stored.payload, stored.priority, stored.timeout) == ("y", 2, 3, 7.0)
    assert stored.status == JobStatus.DELAYED and stored.run_at is not None
    assert stored.run_at >= first.run_at + 0.15
    assert stored.created_at == pytest.approx(first.created_at, abs=0.01)
    assert (await q.counts())["delayed"] == 1
    events = [e.event async for e in _events(q, first.id)]
    assert "debounced" in events


async def _events(q: Any, job_id: str) -> Any:
    for event in await q.job_events(job_id):
        yield event


async def test_debounce_after_start_creates_a_new_job(make_queue: Any) -> None:
    q = await make_queue()
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(job: Any) -> str:
        started.set()
        await release.wait()
        return "ok"

    first = await q.enqueue("x", 1, dedup_key="d", debounce=0.05)
    async with running(q, {"x": slow}, concurrency=1):
        await asyncio.wait_for(started.wait(), 10)
        second = await q.enqueue("x", 2, dedup_key="d", debounce=60)
        assert second.id != first.id and second.status == JobStatus.DELAYED
        third = await q.enqueue("x", 3, dedup_key="d", debounce=60)
        assert third.id == second.id
        release.set()
        await wait_status(q, first.id, "completed")
    stored = await q.get_job(second.id)
    assert stored is not None and stored.payload == 3


async def test_debounce_10_enqueues_run_once_with_the_last_payload(make_queue: Any) -> None:
    q = await make_queue()
    runs: list[Any] = []
    ids = set()
    async with running(q, {"x": lambda job: runs.append(job.payload)}, concurrency=2):
        for i in range(10):
            ids.add((await q.enqueue("x", i, dedup_key="burst", debounce=0.5)).id)
            await asyncio.sleep(0.1)
        assert len(ids) == 1
        job_id = ids.pop()
        began = time.monotonic()
        await wait_status(q, job_id, "completed")
        assert time.monotonic() - began >= 0.3  # not before 0.5 s after the last enqueue
        await asyncio.sleep(0.3)
    assert runs == [9]
    assert (await q.counts())["completed"] == 1


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"dedup_key": ""}, "dedup_key"),
        ({"dedup_key": "k" * (MAX_DEDUP_KEY + 1)}, "dedup_key"),
        ({"dedup_key": 5}, "dedup_key"),
        ({"debounce": 5}, "debounce"),
        ({"dedup_ttl": 5}, "dedup_ttl"),
        ({"dedup_key": "k", "dedup_ttl": 0}, "dedup_ttl"),
        ({"dedup_key": "k", "dedup_ttl": -1}, "dedup_ttl"),
        ({"dedup_key": "k", "dedup_ttl": float("nan")}, "dedup_ttl"),
        ({"dedup_key": "k", "debounce": 0}, "debounce"),
        ({"dedup_key": "k", "debounce": -2.5}, "debounce"),
        ({"dedup_key": "k", "debounce": True}, "debounce"),
        ({"dedup_key": "k", "debounce": 1, "delay": 3}, "debounce"),
        ({"dedup_key": "k", "debounce": 1, "run_at": time.time() + 9}, "debounce"),
        ({"dedup_key": "k", "debounce": 1, "dedup_ttl": 3}, "dedup_ttl"),
    ],
)
async def test_bad_dedup_options_raise_and_write_nothing(
    make_queue: Any, options: dict[str, Any], field: str
) -> None:
    q = await make_queue()
    with pytest.raises(InvalidJob, match=field):
        await q.enqueue("x", 1, **options)
    with pytest.raises(InvalidJob, match=rf"job 1: .*{field}"):
        await q.enqueue_many([JobSpec("x", 0), JobSpec("x", 1, **options)])
    assert sum((await q.counts()).values()) == 0


async def test_dedup_entries_stay_bounded(make_queue: Any) -> None:
    q = await make_queue()
    for i in range(60):
        job = await q.enqueue("x", i, dedup_key=f"k{i}")
        await q.cancel(job.id)
    await asyncio.sleep(0.05)
    await q.enqueue("x", "last", dedup_key="last")
    # each enqueue that adds an entry drops up to 20 expired ones
    if make_queue.backend == "memory":
        left = len(q._dedup)
    else:
        left = int(await q.client.execute("HLEN", q.keys.dedup))
        assert int(await q.client.execute("ZCARD", q.keys.dedupexp)) == left
    assert left <= 3


_ENQUEUER = """
import asyncio, sys, time
from redkeep.queue import RedisJobQueue
from redkeep.redis.mux import MuxClient

async def main(url, prefix, start_at):
    client = MuxClient(url)
    q = RedisJobQueue(client, "dedup-procs", key_prefix=prefix)
    await q.register()
    await asyncio.sleep(max(0.0, float(start_at) - time.time()))
    jobs = await asyncio.gather(*(q.enqueue("x", i, dedup_key="one") for i in range(5)))
    print(" ".join(j.id for j in jobs))
    await client.close()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_dedup_with_20_enqueuers_in_4_processes(redis_url: str, prefix: str) -> None:
    import subprocess
    import sys

    from redkeep.queue import RedisJobQueue
    from redkeep.redis.mux import MuxClient

    start_at = time.time() + 2.0  # every process enqueues at the same moment
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ENQUEUER, redis_url, prefix, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    ids: set[str] = set()
    for proc in procs:
        out, err = await asyncio.to_thread(proc.communicate, timeout=60)
        assert proc.returncode == 0, err.decode()
        ids.update(out.decode().split())
    assert len(ids) == 1
    client = MuxClient(redis_url)
    try:
        q = RedisJobQueue(client, "dedup-procs", key_prefix=prefix)
        assert (await q.counts())["waiting"] == 1
    finally:
        await client.close()


@pytest.mark.upstash
async def test_dedup_and_debounce_over_upstash_rest(upstash_emulator: Any, prefix: str) -> None:
    from redkeep.queue import RedisJobQueue
    from redkeep.redis.upstash import UpstashRestClient

    client = UpstashRestClient(upstash_emulator.url, upstash_emulator.token)
    try:
        q = RedisJobQueue(client, "rest-dedup", key_prefix=prefix)
        first = await q.enqueue("x", 1, dedup_key="k", dedup_ttl=30)
        again = await q.enqueue("x", 2, dedup_key="k")
        assert again.id == first.id and again.payload == 1 and again.dedup_key == "k"
        bounced = await q.enqueue("x", 1, dedup_key="d", debounce=30)
        last = await q.enqueue("x", 2, dedup_key="d", debounce=30)
        assert last.id == bounced.id and last.payload == 2
        await q.cancel(first.id)
        assert (await q.enqueue("x", 3, dedup_key="k")).id == first.id  # within the ttl
        assert await q.cancel_waiting() == 1
        counts = await q.counts()
        assert (counts["waiting"], counts["delayed"], counts["cancelled"]) == (0, 0, 2)
        assert await q.retry_failed() == 0
    finally:
        await client.close()
