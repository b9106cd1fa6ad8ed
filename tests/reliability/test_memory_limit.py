"""Scenario 5: memory limit. A private server with ``maxmemory`` and ``noeviction`` fills up.

Jobs (single and batched enqueues) are added until Redis refuses writes. Each refused enqueue
must raise BackendResponseError mentioning OOM, and the queue must stay consistent: every job
record (state and data) has its status-set entry and every status-set entry has its records
(nothing half-written), no refused job left anything behind, and every acknowledged job is
intact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from redkeep.cache import RedisCache
from redkeep.errors import BackendResponseError
from redkeep.queue import JobSpec, JobStatus, RedisJobQueue
from redkeep.redis.mux import MuxClient
from tests.reliability.harness import Deadline, Figures, bounded, scale

pytestmark = pytest.mark.slow

HEADROOM = scale(1_000_000, 4_000_000)  # bytes above the server's idle usage
PAYLOAD = "x" * 1000
MAX_ENQUEUES = 100_000
WINDOW = scale(30.0, 60.0)
AFTER_OOM = 20  # refused enqueues attempted after the first one


@pytest.mark.timeout(WINDOW + 60)
async def test_noeviction_limit_refuses_enqueue_without_half_writes(
    redis_server_factory: Callable[..., Any], figures: Callable[[str, str], Figures]
) -> None:
    fig = figures("memory_limit", "maxmemory + noeviction reached during enqueue")
    server = redis_server_factory(maxmemory_policy="noeviction")
    client = MuxClient(server.url)
    info = await client.info("memory")
    fig.meta(redis_version=(await client.info("server"))["redis_version"])
    limit = int(info["used_memory"]) + HEADROOM
    await client.execute("CONFIG", "SET", "maxmemory", limit)
    fig.bounds(maxmemory_bytes=limit, payload_bytes=len(PAYLOAD), max_enqueues=MAX_ENQUEUES)
    queue = RedisJobQueue(client, "mem", key_prefix="rel")

    acknowledged: set[str] = set()
    refused: dict[str, str] = {}
    window = Deadline(WINDOW)
    for n in bounded(MAX_ENQUEUES, WINDOW):
        batch = n % 10 == 9  # every tenth call is a 50-job enqueue_many
        ids = [f"j{n}-{i}" for i in range(50 if batch else 1)]
        try:
            if batch:
                await queue.enqueue_many(JobSpec("work", PAYLOAD, job_id=i) for i in ids)
            else:
                await queue.enqueue("work", PAYLOAD, job_id=ids[0])
        except BackendResponseError as exc:
            refused.update(dict.fromkeys(ids, str(exc)))
            if len(refused) >= AFTER_OOM + 50:
                break
        else:
            acknowledged.update(ids)
    fig.record(jobs=len(acknowledged), refused=len(refused), fill_s=round(window.elapsed, 1))
    assert refused, f"no enqueue was refused after {len(acknowledged)} jobs"
    messages = set(refused.values())
    assert all("OOM" in m for m in messages), f"refusals without OOM: {messages}"

    # The cache hits the same wall (memory may have dipped below the limit meanwhile, so write
    # until refused; the bound is far above what the headroom holds).
    cache = RedisCache(client, "mem", key_prefix="rel")
    with pytest.raises(BackendResponseError, match="OOM"):
        for n in bounded(HEADROOM // len(PAYLOAD) + 100, 30.0):
            await cache.set(f"fill-{n}", PAYLOAD)

    # Consistency: job records versus status sets, straight from Redis.
    keys = queue.keys
    states = await client.hgetall(keys.state)
    datas = await client.hgetall(keys.data)
    members: dict[str, list[str]] = {}
    for status in JobStatus:
        for member in await client.zrange(keys.status_key(status.value), 0, -1):
            members.setdefault(str(member), []).append(status.value)
    without_entry = sorted(set(states) - set(members))
    without_hash = sorted(set(members) - set(states))
    in_two_sets = sorted(i for i, sets in members.items() if len(sets) > 1)
    incomplete = sorted(set(states) ^ set(datas))
    wrong_status = sorted(i for i, rec in states.items() if [rec.split("|")[0]] != members.get(i))
    left_behind = sorted(set(refused) & (set(states) | set(datas) | set(members)))
    missing = sorted(acknowledged - set(states))
    used = int((await client.info("memory"))["used_memory"])
    await client.close()
    fig.record(
        stored=len(states), half_written=len(without_entry) + len(without_hash) + len(incomplete),
        refused_left_behind=len(left_behind), lost=len(missing), used_memory_bytes=used,
    )  # fmt: skip
    assert not without_entry, f"job records without queue entry: {without_entry[:5]}"
    assert not without_hash, f"queue entries without job records: {without_hash[:5]}"
    assert not in_two_sets, f"jobs in two status sets: {in_two_sets[:5]}"
    assert not incomplete, f"jobs with a state but no data record or back: {incomplete[:5]}"
    assert not wrong_status, f"jobs listed under another status: {wrong_status[:5]}"
    assert not left_behind, f"refused enqueues left data behind: {left_behind[:5]}"
    assert not missing, f"acknowledged jobs missing: {missing[:5]}"
