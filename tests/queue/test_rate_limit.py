"""Rate limit contract (sliding window), run on every backend."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from redkeep.errors import InvalidJob
from redkeep.queue import Job, JobSpec, RateLimit
from redkeep.queue.protocol import StepRequest
from tests.queue.conftest import running, wait_until


async def test_set_get_and_clear(make_queue: Any) -> None:
    q = await make_queue()
    assert await q.get_rate_limit() is None
    assert await q.set_rate_limit(50, 1) == RateLimit(50, 1.0)
    assert await q.get_rate_limit() == RateLimit(50, 1.0)
    await q.set_rate_limit(3, 0.25)  # replaces
    assert await q.get_rate_limit() == RateLimit(3, 0.25)
    assert await q.set_rate_limit(None) is None
    assert await q.get_rate_limit() is None


@pytest.mark.parametrize(
    ("max_jobs", "per_seconds", "field"),
    [(0, 1, "max_jobs"), (-5, 1, "max_jobs"), (1.5, 1, "max_jobs"), (True, 1, "max_jobs"),
     (10, 0, "per_seconds"), (10, -1, "per_seconds"), (10, None, "per_seconds"),
     (10, float("nan"), "per_seconds"), (10, 10**9, "per_seconds"), (None, 5, "per_seconds")],
)  # fmt: skip
async def test_bad_limits_are_refused_and_change_nothing(
    make_queue: Any, max_jobs: Any, per_seconds: Any, field: str
) -> None:
    q = await make_queue()
    await q.set_rate_limit(7, 2)
    with pytest.raises(InvalidJob, match=field):
        await q.set_rate_limit(max_jobs, per_seconds)
    assert await q.get_rate_limit() == RateLimit(7, 2.0)


async def test_step_claims_only_what_the_window_has_room_for(make_queue: Any) -> None:
    q = await make_queue()
    await q.set_rate_limit(3, 0.5)
    for i in range(5):
        await q.enqueue("x", i)
    first = await q.step(StepRequest("w1", "r1", claim=10, idle=1.5))
    assert len(first.jobs) == 3
    assert first.more is False  # the worker must not ask again at once
    assert first.throttled is not None and 0 < first.throttled <= 0.5
    again = await q.step(StepRequest("w1", "r2", claim=10))
    assert again.jobs == [] and again.throttled is not None and again.throttled <= 0.5
    assert (await q.counts())["waiting"] == 2
    await asyncio.sleep(again.throttled + 0.01)
    later = await q.step(StepRequest("w1", "r3", claim=10))
    assert len(later.jobs) == 2 and later.throttled is None  # nothing left waiting


async def test_no_window_holds_more_than_the_limit(make_queue: Any) -> None:
    q = await make_queue()
    await q.set_rate_limit(5, 1.0)
    started: list[float] = []

    def handler(job: Job) -> None:
        assert job.started_at is not None
        started.append(job.started_at)

    async with running(q, {"x": handler}, concurrency=10):
        await q.enqueue_many([JobSpec("x", i) for i in range(12)])
        await wait_until(lambda: _true(len(started) == 12), timeout=15)
    started.sort()
    assert max(sum(1 for t in started if s <= t < s + 1.0) for s in started) == 5
    assert started[-1] - started[0] >= 2.0  # 12 jobs at 5/s: three windows


async def test_limited_queue_hands_nothing_off_and_clearing_releases_it(make_queue: Any) -> None:
    q = await make_queue()
    ran: list[int] = []
    async with running(q, {"x": lambda job: ran.append(job.payload)}, concurrency=4):
        await asyncio.sleep(0.2)  # the worker is idle (registered for hand-offs on Redis)
        await q.set_rate_limit(2, 30)
        for i in range(4):
            await q.enqueue("x", i)
        await wait_until(lambda: _true(len(ran) == 2), timeout=5)
        await asyncio.sleep(0.5)
        assert len(ran) == 2 and (await q.counts())["waiting"] == 2
        cleared = time.monotonic()
        await q.set_rate_limit(None)
        await wait_until(lambda: _true(len(ran) == 4), timeout=5)
        assert time.monotonic() - cleared < 2.0  # the sleeping worker was woken
    assert sorted(ran) == [0, 1, 2, 3]


async def test_raising_the_limit_takes_effect_at_once(make_queue: Any) -> None:
    q = await make_queue()
    await q.set_rate_limit(1, 60)
    ran: list[int] = []
    async with running(q, {"x": lambda job: ran.append(job.payload)}, concurrency=4):
        await q.enqueue_many([JobSpec("x", i) for i in range(3)])
        await wait_until(lambda: _true(len(ran) == 1), timeout=5)
        await q.set_rate_limit(3, 60)  # the start already in the window counts
        await wait_until(lambda: _true(len(ran) == 3), timeout=5)


async def _true(value: bool) -> bool:
    return value
