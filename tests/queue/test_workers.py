"""The worker registry on every backend: a worker is listed while it runs (host, pid, queues,
times, active and processed jobs), leaves when it stops, and expires when its heartbeats stop.
(The registry's part of the worker protocol, on Upstash too, is in test_protocol.py.)"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

import pytest

from redkeep.queue import RedisJobQueue
from redkeep.queue import workers as registry
from redkeep.queue.keys import WorkerKeys
from redkeep.queue.workers import registries_for
from tests.queue.conftest import running, wait_status, wait_until


async def _listed(queue: Any) -> list[registry.WorkerView]:
    return await queue.worker_registry().list()  # type: ignore[no-any-return]


async def test_a_running_worker_is_listed_and_leaves_when_it_stops(
    make_queue: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(registry, "HEARTBEAT_INTERVAL", 0.1)
    q = await make_queue()
    release = asyncio.Event()

    async def hold(job: Any) -> None:
        await release.wait()

    before = time.time()
    async with running(q, {"x": lambda job: None, "hold": hold}, concurrency=3) as worker:
        await wait_until(lambda: _has(q, 1))
        [view] = await _listed(q)
        assert view["id"] == worker.id
        assert (view["host"], view["pid"]) == (socket.gethostname(), os.getpid())
        assert view["queues"] == [q.name]
        assert view["concurrency"] == 3
        assert before - 2 <= view["started_at"] <= view["last_heartbeat"] <= time.time() + 2
        done = [await q.enqueue("x") for _ in range(4)]
        for job in done:
            await wait_status(q, job.id, "completed")
        held = await q.enqueue("hold")
        await wait_status(q, held.id, "active")

        async def counted() -> bool:
            [v] = await _listed(q)
            return (
                v["processed"] == 4 and v["active"] == 1 and v["started_at"] == view["started_at"]
            )

        await wait_until(counted)
        release.set()
        await wait_status(q, held.id, "completed")
    assert await _listed(q) == []


async def test_two_workers_on_two_queues(make_queue: Any) -> None:
    a = await make_queue()
    queues = [a, await make_queue()]
    async with (
        running(queues, {"x": lambda job: None}, worker_id="w-one"),
        running(a, {"x": lambda job: None}, worker_id="w-two"),
    ):
        await wait_until(lambda: _has(a, 2))
        views = await _listed(a)
        assert [v["id"] for v in views] == ["w-one", "w-two"]
        assert views[0]["queues"] == [q.name for q in queues]
        assert views[1]["queues"] == [a.name]
    assert await _listed(a) == []


async def test_an_entry_expires_when_heartbeats_stop(make_queue: Any) -> None:
    q = await make_queue()
    reg = q.worker_registry()
    # 2 s: long enough to be listed first on a loaded machine, then gone with no beat
    await reg.beat("gone-worker", {"host": "h", "pid": 1, "queues": [q.name]}, ttl=2.0)
    await reg.beat("live-worker", {"host": "h", "pid": 2, "queues": [q.name]}, ttl=60)
    assert [v["id"] for v in await reg.list()] == ["gone-worker", "live-worker"]

    async def only_live() -> bool:
        return [v["id"] for v in await reg.list()] == ["live-worker"]

    await wait_until(only_live, 20, what="the silent worker to expire")
    await reg.remove("live-worker")
    assert await reg.list() == []


async def test_redis_keys_are_pruned_and_expire_with_the_last_worker(
    make_queue: Any, prefix: str
) -> None:
    if make_queue.backend == "memory":
        pytest.skip("the in-process registry has no Redis keys")
    q = await make_queue()
    assert isinstance(q, RedisJobQueue)
    reg = q.worker_registry()
    keys = WorkerKeys(prefix)
    await reg.beat("a", {"host": "h"}, ttl=0.2)
    await reg.beat("b", {"host": "h"}, ttl=1.0)
    await asyncio.sleep(0.3)
    await reg.beat("b", {"host": "h"}, ttl=1.0)  # drops "a"
    assert await q.client.zrange(keys.beats, 0, -1) == ["b"]
    assert list(await q.client.hgetall(keys.info)) == ["b"]
    for key in (keys.beats, keys.info):
        assert 0 < await q.client.pttl(key) <= 1000
    await asyncio.sleep(1.1)
    assert await q.client.exists(keys.beats, keys.info) == 0


async def test_a_worker_beats_once_per_store(make_queue: Any, prefix: str) -> None:
    # Queues on one client and key prefix share one registry; memory queues each have their
    # own (a worker serving both is listed by either).
    a = await make_queue()
    if make_queue.backend == "memory":
        assert len(registries_for([a, await make_queue()])) == 2
        return
    b = RedisJobQueue(a.client, "other", key_prefix=prefix)
    elsewhere = RedisJobQueue(a.client, "other", key_prefix=f"{prefix}-2")
    assert len(registries_for([a, b])) == 1
    assert len(registries_for([a, b, elsewhere])) == 2


async def test_a_damaged_record_is_listed_without_failing_the_list(
    make_queue: Any, prefix: str
) -> None:
    if make_queue.backend == "memory":
        pytest.skip("the in-process registry keeps views, not stored records")
    q = await make_queue()
    assert isinstance(q, RedisJobQueue)
    reg = q.worker_registry()
    await reg.beat("ok", {"host": "h", "pid": 7, "queues": [q.name]}, ttl=30)
    await reg.beat("bad", {"host": "h"}, ttl=30)
    await q.client.hset(WorkerKeys(prefix).info, {"bad": "not json"})
    views = await reg.list()
    assert [(v["id"], v["host"], v["pid"]) for v in views] == [("bad", "", 0), ("ok", "h", 7)]


async def _has(queue: Any, n: int) -> bool:
    return len(await _listed(queue)) == n
