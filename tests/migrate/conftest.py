"""Shared data for the migration tests: memory stores holding every value type and job state."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from datetime import time as dtime
from decimal import Decimal
from typing import Any

import pytest

from redkeep.cache.memory import MemoryCache
from redkeep.queue.backoff import Backoff
from redkeep.queue.job import Job, JobFailure, JobStatus
from redkeep.queue.memory import MemoryJobQueue

VALUES: dict[str, Any] = {
    "none": None,
    "true": True,
    "false": False,
    "int": 42,
    "negative": -7,
    "bigint": 2**100 + 1,
    "float": 3.25,
    "inf": math.inf,
    "str": "héllo wörld ✓",
    "empty-str": "",
    "list": [1, "two", 3.0, None],
    "dict": {"a": 1, "b": {"c": [True, False]}},
    "tag-lookalike": {"__rk__": "dt", "v": "not a datetime"},
    "datetime-naive": datetime(2024, 5, 17, 12, 30, 45, 123456),
    "datetime-aware": datetime(
        2024, 5, 17, 12, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))
    ),
    "datetime-utc": datetime(2024, 1, 1, tzinfo=UTC),
    "date": date(2020, 2, 29),
    "time": dtime(23, 59, 58, 999),
    "timedelta": timedelta(days=2, seconds=5, microseconds=7),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "decimal": Decimal("12345.678901234567890"),
    "bytes": b"\x00\x01\xfe\xffbinary",
    "set": {1, 2, 3},
    "frozenset": frozenset({"x", "y"}),
    "tuple": (1, "a", (2, 3)),
    "nested": {"when": [datetime(2000, 1, 1)], "raw": [b"ab"], "s": {("t", 1)}},
}
# Keys that are awkward in Redis: spaces, braces (cluster hash tags), globs, colons, unicode.
ODD_KEYS = ["with space", "{tagged}:key", "glob*?[x]", "a:b:c", "ключ", "line\nbreak"]


@dataclass
class Stores:
    """Memory caches and queues filled with known data, and what to expect after a copy."""

    caches: dict[str, MemoryCache]
    queues: dict[str, MemoryJobQueue]
    ttls: dict[tuple[str, str], float] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)

    @property
    def cache_count(self) -> int:
        return len(VALUES) * 2 + len(ODD_KEYS)

    @property
    def job_count(self) -> int:
        return len(self.jobs)

    def mappings(self) -> tuple[Mapping[str, MemoryCache], Mapping[str, MemoryJobQueue]]:
        return self.caches, self.queues


def _job(queue: str, job_id: str, status: JobStatus, **fields: Any) -> Job:
    now = time.time()
    base: dict[str, Any] = {
        "id": job_id,
        "name": "send",
        "queue": queue,
        "payload": {"to": f"{job_id}@example.com", "n": [1, 2]},
        "status": status,
        "priority": 0,
        "attempts": 0,
        "max_attempts": 3,
        "created_at": round(now - 100, 3),
    }
    base.update(fields)
    return Job(**base)


async def build_stores() -> Stores:
    """Two caches (one with TTLs) and two queues with jobs in every status."""
    plain = MemoryCache("plain")
    expiring = MemoryCache("expiring")
    stores = Stores({"plain": plain, "expiring": expiring}, {})
    for key, value in VALUES.items():
        await plain.set(key, value)
        await expiring.set(key, value, ttl=600)
        stores.ttls[("expiring", key)] = 600.0
    for i, key in enumerate(ODD_KEYS):
        await plain.set(key, {"i": i})

    emails = MemoryJobQueue("emails")
    reports = MemoryJobQueue("reports")
    stores.queues = {"emails": emails, "reports": reports}
    now = time.time()
    # waiting / delayed / cancelled through the public API
    for i, prio in enumerate([0, 5, -3]):
        job = await emails.enqueue("send", {"i": i}, job_id=f"w{i}", priority=prio, max_attempts=5)
        stores.jobs[job.id] = job
    job = await emails.enqueue("send", {"later": True}, job_id="d1", run_at=round(now + 3600, 3))
    stores.jobs[job.id] = job
    job = await emails.enqueue("send", None, job_id="c1")
    assert await emails.cancel("c1")
    stores.jobs["c1"] = await emails.get_job("c1")  # type: ignore[assignment]
    # finished and active states with attempts, results and errors, via restore_job
    restored = [
        _job(
            "reports",
            "done1",
            JobStatus.COMPLETED,
            attempts=1,
            started_at=round(now - 50, 3),
            finished_at=round(now - 40, 3),
            result={"rows": 12, "ok": True},
            worker_id="w-1",
        ),
        _job(
            "reports",
            "fail1",
            JobStatus.FAILED,
            attempts=3,
            started_at=round(now - 30, 3),
            finished_at=round(now - 20, 3),
            error=JobFailure("ValueError", "bad row 7", "Traceback...\nValueError: bad row 7"),
            backoff=Backoff(2.0, 60.0, "fixed", jitter=False),
            timeout=30.0,
            priority=9,
        ),
        _job(
            "reports",
            "act1",
            JobStatus.ACTIVE,
            attempts=2,
            started_at=round(now - 5, 3),
            worker_id="w-2",
        ),
        _job("reports", "wait-r", JobStatus.WAITING, attempts=1, priority=-2),
    ]
    for job in restored:
        assert await reports.restore_job(job)
        stores.jobs[job.id] = job
    return stores


@pytest.fixture
async def stores() -> Stores:
    return await build_stores()


def same_value(a: Any, b: Any) -> bool:
    """Equality that also holds for NaN and keeps types (1 != True, tuple != list)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b
