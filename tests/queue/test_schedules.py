"""Schedules: validation, cron ticks across DST, misfire planning, and the contract on every
backend (memory, Redis over mux and redis-py, Cluster, Sentinel): CRUD, exactly one job per
tick with several concurrent schedulers, pause/resume, misfire after a pause in scheduling."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from redkeep.errors import InvalidJob
from redkeep.queue import MemoryJobQueue
from redkeep.queue.schedule_ticks import plan_ticks
from redkeep.queue.schedules import Schedule, next_tick, tick_job_id


def _ms(text: str, tz: str) -> int:
    return round(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp() * 1000)


def _local(ms: int, tz: str) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).isoformat()


@pytest.mark.parametrize(
    ("tz", "cron", "after", "expected"),
    [
        # Europe/Berlin springs forward 2024-03-31 02:00 -> 03:00: 02:30 does not exist that day
        ("Europe/Berlin", "30 2 * * *", "2024-03-30T12:00",
         ["2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00"]),
        # and falls back 2024-10-27 03:00 -> 02:00: 02:30 happens once (the first time)
        ("Europe/Berlin", "30 2 * * *", "2024-10-26T12:00",
         ["2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"]),
        ("Europe/Berlin", "0 * * * *", "2024-10-27T01:30",
         ["2024-10-27T02:00:00+02:00", "2024-10-27T02:00:00+01:00", "2024-10-27T03:00:00+01:00"]),
        # America/New_York: 2024-03-10 02:00 -> 03:00 and 2024-11-03 02:00 -> 01:00
        ("America/New_York", "15 2 * * *", "2024-03-09T12:00",
         ["2024-03-10T03:00:00-04:00", "2024-03-11T02:15:00-04:00"]),
        ("America/New_York", "0 9 * * 1-5", "2024-11-01T12:00",
         ["2024-11-04T09:00:00-05:00", "2024-11-05T09:00:00-05:00"]),
        ("America/New_York", "30 1 * * *", "2024-11-02T12:00",
         ["2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"]),
    ],
)  # fmt: skip
def test_cron_ticks_across_dst(tz: str, cron: str, after: str, expected: list[str]) -> None:
    s = Schedule("s", "h", "q", cron=cron, tz=tz)
    got, t = [], _ms(after, tz)
    for _ in expected:
        nxt = next_tick(s, t)
        assert nxt is not None
        got.append(_local(nxt, tz))
        t = nxt
    assert got == expected


def test_every_ticks_follow_their_anchor_and_bounds() -> None:
    s = Schedule("s", "h", "q", every=60, anchor=1000.0, start_at=1000.0, end_at=1200.0)
    assert next_tick(s, 0) == 1_000_000
    assert next_tick(s, 1_000_000) == 1_060_000
    assert next_tick(s, 1_180_000) is None  # 1240 is past end_at


@pytest.mark.parametrize(
    ("misfire", "ticks"),
    [("skip", [106_000]), ("run_once", [105_000, 106_000]),
     ("catch_up", [100_000, 101_000, 102_000, 103_000, 104_000, 105_000, 106_000])],
)  # fmt: skip
def test_misfire_plans_after_schedulers_were_down(misfire: Any, ticks: list[int]) -> None:
    s = Schedule("s", "h", "q", every=1, anchor=0.0, misfire=misfire)
    # due since 100 s, now 105.5 s: 100..105 were missed; 106 is within the look-ahead
    plan = plan_ticks(s, 100_000, 105_500, down=True)
    assert plan.ticks == ticks and plan.next_ms == 107_000
    late = plan_ticks(s, 100_000, 105_500, down=False)  # late, not missed: all fired
    assert late.ticks == [100_000 + 1000 * i for i in range(7)]


def test_catch_up_is_bounded() -> None:
    s = Schedule("s", "h", "q", every=1, anchor=0.0, misfire="catch_up")
    plan = plan_ticks(s, 0, 10_000_000, down=True)
    assert len(plan.ticks) == 101 and plan.ticks[0] == 10_000_000 - 99_000


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * *"}, "cron"),
        ({}, "cron/every"),
        ({"cron": "* * * * *", "every": 5}, "cron/every"),
        ({"every": 0}, "every"),
        ({"every": -1}, "every"),
        ({"every": 5, "tz": "Mars/Olympus"}, "tz"),
        ({"every": 5, "start_at": 200.0, "end_at": 100.0}, "end_at"),
        ({"every": 5, "misfire": "sometimes"}, "misfire"),
        ({"every": 5, "schedule_id": "bad id"}, "schedule_id"),
        ({"every": 5, "schedule_id": "s1\n"}, "schedule_id"),  # `$` matches before a newline
        ({"every": 5, "name": "report\nERROR forged"}, "name"),  # job names are printable
    ],
)
async def test_bad_definitions_name_the_field_and_write_nothing(
    make_queue: Any, kwargs: dict[str, Any], field: str
) -> None:
    q = await make_queue()
    kwargs = dict(kwargs)
    sid = kwargs.pop("schedule_id", "s1")
    name = kwargs.pop("name", "h")
    with pytest.raises(InvalidJob, match=f"^{field}:"):
        await q.schedule(sid, name, **kwargs)
    assert await q.list_schedules() == []


async def test_schedule_crud_pause_resume(make_queue: Any) -> None:
    q = await make_queue()
    s = await q.schedule("daily", "report", {"to": "ops"}, cron="0 9 * * *", tz="Europe/Berlin")
    assert s.next_run_at is not None and not s.paused and s.last_job_id is None
    assert s.payload == {"to": "ops"}
    got = await q.get_schedule("daily")
    assert got is not None and (got.cron, got.tz, got.next_run_at) == (s.cron, s.tz, s.next_run_at)
    # an upsert with the same timing keeps the next tick and the id; other fields change
    again = await q.schedule("daily", "report", {"to": "dev"}, cron="0 9 * * *", tz="Europe/Berlin")
    assert again.next_run_at == s.next_run_at and again.payload == {"to": "dev"}
    every = await q.schedule("often", "ping", every=30, priority=5, max_attempts=2)
    assert [x.id for x in await q.list_schedules()] == ["daily", "often"]
    assert await q.pause_schedule("often")
    paused = await q.get_schedule("often")
    assert paused is not None and paused.paused and paused.next_run_at is None
    assert await q.resume_schedule("often")
    resumed = await q.get_schedule("often")
    assert resumed is not None and not resumed.paused and resumed.next_run_at is not None
    assert resumed.next_run_at >= every.next_run_at  # type: ignore[operator]
    assert await q.unschedule("often") and not await q.unschedule("often")
    assert not await q.pause_schedule("often") and await q.get_schedule("often") is None
    assert [x.id for x in await q.list_schedules()] == ["daily"]


async def test_one_job_per_tick_with_concurrent_schedulers(make_queue: Any) -> None:
    if make_queue.backend == "memory":
        q = await make_queue()
        schedulers = [q, q, q]  # one process: three workers share the queue object
    else:
        name = f"q-{uuid.uuid4().hex[:8]}"
        schedulers = [await make_queue(name=name) for _ in range(3)]
        q = schedulers[0]
    await q.schedule("tick", "t", every=0.2)
    await q.set_events(False)

    async def drive(queue: Any, worker: str) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + 3.0
        while loop.time() < end:
            await queue.fire_schedules(worker)
            await asyncio.sleep(0.01)  # far more often than a worker would

    await asyncio.gather(*(drive(s, f"w{i}") for i, s in enumerate(schedulers)))
    jobs = [j async for j in q.dump_jobs()]
    ticks = sorted(int(j.id.rsplit(":", 1)[1]) for j in jobs)
    assert len(ticks) == len(set(ticks))  # no tick twice
    assert all(b - a == 200 for a, b in itertools.pairwise(ticks))  # none missed
    assert 15 <= len(ticks) <= 22  # 3 s of 0.2 s ticks, plus the look-ahead
    s = await q.get_schedule("tick")
    assert s is not None and s.last_job_id == tick_job_id("tick", ticks[-1])


async def test_misfire_modes_after_schedulers_stopped(make_queue: Any) -> None:
    q = await make_queue()
    for mode in ("skip", "run_once", "catch_up"):
        await q.schedule(mode, "t", every=1, misfire=mode)

    async def drive(seconds: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            await asyncio.sleep(await q.fire_schedules("w"))

    await drive(1.5)
    before = {s.id: s.next_run_at for s in await q.list_schedules()}
    await asyncio.sleep(6.5)  # no scheduler: about 6 ticks are missed
    start = await q._server_ms()
    await q.fire_schedules("w")
    jobs = [j async for j in q.dump_jobs()]

    def missed(mode: str) -> list[int]:
        ticks = [int(j.id.rsplit(":", 1)[1]) for j in jobs if j.id.startswith(f"sched:{mode}:")]
        return sorted(t for t in ticks if before[mode] * 1000 <= t <= start)

    assert missed("skip") == []
    assert len(missed("run_once")) == 1
    assert 5 <= len(missed("catch_up")) <= 8


async def test_a_service_without_workers_still_stores_and_lists(make_queue: Any) -> None:
    q = await make_queue()
    await q.schedule("s", "h", every=3600)
    assert [s.id for s in await q.list_schedules()] == ["s"]
    assert [j async for j in q.dump_jobs()] == []


def test_memory_queue_schedules_are_per_queue() -> None:
    a, b = MemoryJobQueue("a"), MemoryJobQueue("b")
    asyncio.run(a.schedule("s", "h", every=10))
    assert asyncio.run(b.list_schedules()) == []


async def test_fired_jobs_carry_the_schedules_payload_and_job_options(make_queue: Any) -> None:
    q = await make_queue()
    await q.schedule("opts", "report", {"to": "ops"}, every=0.2, priority=7, max_attempts=5,
                     timeout=12.5, backoff=4)  # fmt: skip
    loop = asyncio.get_running_loop()
    end = loop.time() + 10
    jobs: list[Any] = []
    while not jobs and loop.time() < end:
        await q.fire_schedules("w")
        jobs = [j async for j in q.dump_jobs()]
        await asyncio.sleep(0.05)
    assert jobs, "no tick fired within 10 s"
    job = await q.get_job(jobs[0].id)
    assert job is not None and job.id.startswith("sched:opts:")
    assert (job.name, job.payload, job.priority) == ("report", {"to": "ops"}, 7)
    assert (job.max_attempts, job.timeout) == (5, 12.5)
    assert job.backoff is not None and job.backoff.base == 4
