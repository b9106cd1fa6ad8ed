"""Schedules' definitions and state: the :class:`Schedule` record, its stored form, validation,
and the limits of :mod:`redkeep.queue.schedules` (which drives them)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from cronsim import CronSim, CronSimError

from redkeep.errors import InvalidJob
from redkeep.queue.backoff import Backoff
from redkeep.queue.job import MAX_NAME, MAX_PRIORITY, decode_value

__all__ = [
    "CLAIM_LEASE",
    "DOWN_GAP",
    "LOOKAHEAD",
    "MAX_CATCH_UP",
    "Claimed",
    "Fire",
    "Misfire",
    "Schedule",
    "State",
    "decode_schedule",
    "encode_definition",
    "job_options",
    "schedule_from",
    "tick_job_id",
    "validate",
    "with_state",
    "zone",
]

Misfire = Literal["skip", "run_once", "catch_up"]
MISFIRES = ("skip", "run_once", "catch_up")
LOOKAHEAD = 1.0
"""Seconds ahead of a tick at which its job is enqueued (delayed until the tick)."""
CLAIM_LEASE = 10.0
"""Seconds a claimed schedule stays hidden from other workers if its claimer never fires."""
DOWN_GAP = 5.0
"""No schedule pass by any worker for this long: the ticks due meanwhile are missed."""
MAX_CATCH_UP = 100
MAX_PER_PASS = 200
"""Schedules one claim takes at most (the next pass takes the rest at once)."""
MIN_PASS, MAX_PASS = 0.5, 1.0
MAX_SCHEDULE_ID = 150
MIN_EVERY, MAX_EVERY = 0.001, 100 * 366 * 86400.0
MAX_TIME = 253402300799.0  # 9999-12-31T23:59:59Z
SCHEDULE_ID = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.:-]{{0,{MAX_SCHEDULE_ID - 1}}}$")
"""Anchored for OpenAPI; in Python use ``SCHEDULE_ID.fullmatch`` (``$`` also matches before a
final newline)."""


def tick_job_id(schedule_id: str, tick_ms: int) -> str:
    """The id of the job of one tick: the same for every worker that might fire it."""
    return f"sched:{schedule_id}:{tick_ms}"


@dataclass(frozen=True)
class Schedule:
    """A schedule and its state. Times are seconds since the epoch."""

    id: str
    name: str
    """Handler name of the jobs it enqueues."""
    queue: str
    payload: Any = None
    cron: str | None = None
    every: float | None = None
    tz: str = "UTC"
    start_at: float | None = None
    end_at: float | None = None
    misfire: Misfire = "skip"
    priority: int = 0
    max_attempts: int | None = None
    timeout: float | None = None
    backoff: Backoff | None = None
    next_run_at: float | None = None
    """The next tick (None: paused, or past ``end_at``)."""
    paused: bool = False
    last_job_id: str | None = None
    created_at: float | None = None
    anchor: float | None = None
    """``every`` ticks are ``anchor + k * every``."""

    def timing(self) -> tuple[Any, ...]:
        """What decides the ticks: an upsert that changes none of it keeps ``next_run_at``."""
        return (self.cron, self.every, self.tz, self.start_at, self.end_at)


# -- definition <-> storage -------------------------------------------------------------------
def encode_definition(s: Schedule, payload_text: str) -> str:
    """The stored definition (JSON; the payload as the job serializer's text)."""
    return orjson.dumps({
        "name": s.name, "payload": payload_text, "cron": s.cron, "every": s.every, "tz": s.tz,
        "start_at": s.start_at, "end_at": s.end_at, "misfire": s.misfire,
        "priority": s.priority, "max_attempts": s.max_attempts, "timeout": s.timeout,
        "backoff": s.backoff.to_list() if s.backoff else None, "created_at": s.created_at,
        "anchor": s.anchor,
    }).decode()  # fmt: skip


@dataclass(frozen=True)
class State:
    """The mutable part of a schedule: ``version|next_ms|paused|last_job_id``."""

    version: int = 0
    next_ms: int | None = None
    paused: bool = False
    last_job_id: str = ""

    def encode(self) -> str:
        nxt = "" if self.next_ms is None else str(self.next_ms)
        return f"{self.version}|{nxt}|{int(self.paused)}|{self.last_job_id}"

    @classmethod
    def decode(cls, text: str | None) -> State | None:
        if not text:
            return None
        version, nxt, paused, last = text.split("|", 3)
        return cls(int(version), int(nxt) if nxt else None, paused == "1", last)


def decode_schedule(queue: str, schedule_id: str, definition: str, state: State) -> Schedule:
    d = orjson.loads(definition)
    return Schedule(
        id=schedule_id, name=d["name"], queue=queue, payload=decode_value(d["payload"]),
        cron=d["cron"], every=d["every"], tz=d["tz"], start_at=d["start_at"],
        end_at=d["end_at"], misfire=d["misfire"], priority=d["priority"],
        max_attempts=d["max_attempts"], timeout=d["timeout"],
        backoff=Backoff.from_list(d["backoff"]) if d["backoff"] else None,
        next_run_at=None if state.next_ms is None else state.next_ms / 1000.0,
        paused=state.paused, last_job_id=state.last_job_id or None,
        created_at=d["created_at"], anchor=d["anchor"],
    )  # fmt: skip


def zone(tz: str) -> ZoneInfo:
    """The IANA zone ``tz``; :class:`InvalidJob` naming it when unknown."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidJob(
            f"tz: unknown time zone {tz!r} (an IANA name like 'Europe/Berlin')"
        ) from None


# -- validation -------------------------------------------------------------------------------
def validate(
    schedule_id: str, name: str, cron: str | None, every: float | None, tz: str,
    start_at: float | None, end_at: float | None, misfire: str, priority: int,
    max_attempts: int | None, timeout: float | None,
) -> None:  # fmt: skip
    """Raise :class:`InvalidJob` naming the first bad argument."""
    if not isinstance(schedule_id, str) or not SCHEDULE_ID.fullmatch(schedule_id):
        raise InvalidJob(
            f"schedule_id: 1-{MAX_SCHEDULE_ID} characters from A-Z a-z 0-9 _ . : - starting "
            f"with a letter or digit, got {schedule_id!r}"
        )
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or not name.isprintable():
        raise InvalidJob(f"name: a str of 1-{MAX_NAME} printable characters")
    if (cron is None) == (every is None):
        raise InvalidJob("cron/every: give exactly one of cron or every")
    if not isinstance(tz, str):
        raise InvalidJob(f"tz: an IANA zone name like 'Europe/Berlin', got {tz!r}")
    zone(tz)
    if cron is not None:
        if not isinstance(cron, str):
            raise InvalidJob("cron: a cron expression string")
        if len(cron.split()) not in (5, 6):
            raise InvalidJob(f"cron: 5 fields (or 6 with seconds), got {cron!r}")
        try:
            next(CronSim(cron, datetime.now(UTC)))
        except (CronSimError, StopIteration, ValueError) as exc:
            raise InvalidJob(f"cron: invalid expression {cron!r} ({exc})") from None
    if every is not None and (
        isinstance(every, bool) or not isinstance(every, int | float) or not every > 0
        or not math.isfinite(every)
    ):  # fmt: skip
        raise InvalidJob(f"every: a number of seconds > 0, got {every!r}")
    if every is not None and not MIN_EVERY <= every <= MAX_EVERY:
        raise InvalidJob(f"every: from {MIN_EVERY} to {MAX_EVERY:g} seconds, got {every!r}")
    for field_name, value in (("start_at", start_at), ("end_at", end_at)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float)
            or not 0 <= value <= MAX_TIME
        ):  # fmt: skip
            raise InvalidJob(f"{field_name}: seconds since the epoch, got {value!r}")
    if start_at is not None and end_at is not None and end_at < start_at:
        raise InvalidJob("end_at: must not be before start_at")
    if misfire not in MISFIRES:
        raise InvalidJob(f"misfire: one of {', '.join(MISFIRES)}, got {misfire!r}")
    if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > MAX_PRIORITY:
        raise InvalidJob(f"priority: an int in [-{MAX_PRIORITY}, {MAX_PRIORITY}]")
    if max_attempts is not None and (
        isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
    ):
        raise InvalidJob("max_attempts: an int >= 1")
    if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
        raise InvalidJob("timeout: seconds > 0")


# -- one pass's claims and fires ---------------------------------------------------------------
@dataclass(frozen=True)
class Claimed:
    """A schedule claimed by one pass: its definition and state as read by the claim."""

    schedule: Schedule
    state: State


@dataclass(frozen=True)
class Fire:
    """One schedule's fire: jobs ``(job_id, run_at_ms or 0)`` to enqueue and the new state,
    applied only if the schedule's state is still ``expected``."""

    schedule: Schedule
    expected: State
    new: State
    jobs: list[tuple[str, int]]


def with_state(s: Schedule, state: State) -> Schedule:
    """``s`` as seen with ``state`` (its next run, paused flag and last job)."""
    return replace(
        s,
        next_run_at=None if state.next_ms is None or state.paused else state.next_ms / 1000.0,
        paused=state.paused,
        last_job_id=state.last_job_id or None,
    )


def schedule_from(queue: str, schedule_id: str, definition: str, state_text: str) -> Schedule:
    state = State.decode(state_text) or State()
    return with_state(decode_schedule(queue, schedule_id, definition, state), state)


def job_options(s: Schedule, default_attempts: int) -> Mapping[str, Any]:
    """Fields of the jobs a schedule enqueues."""
    return {
        "max_attempts": s.max_attempts or default_attempts,
        "priority": s.priority,
        "timeout": s.timeout,
        "backoff": orjson.dumps(s.backoff.to_list()).decode() if s.backoff else "",
    }
