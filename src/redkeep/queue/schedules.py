"""Schedules: jobs enqueued on a cron expression or every N seconds, driven by the workers.

A schedule is stored with its queue (on Redis: the ``schedules``, ``schedstate`` and
``schedtimes`` keys, see :mod:`redkeep.queue.keys`). Every worker of the queue runs
:func:`drive_schedules`: timed by the next tick (at least every :data:`IDLE_PASS` seconds, every
:data:`MAX_PASS` while the worker runs jobs, and at once when a schedule is written: see
:meth:`SchedulesMixin.schedules_changed`) it *claims* the schedules whose next tick is due
within :data:`LOOKAHEAD` (one atomic script on Redis server time, so two workers never claim
the same one), computes their ticks here (cron with :mod:`cronsim` in the schedule's IANA zone
via :mod:`zoneinfo`: DST-correct), then *fires* them: one atomic script enqueues the tick's
job, whose id is derived from the schedule id and the tick time (``sched:<id>:<tick ms>``), and
advances the schedule only if nobody changed it since the claim. Exactly one job per tick
follows: a second fire of the same tick is refused, and a worker that dies between claim and
fire leaves the schedule to be claimed again after :data:`CLAIM_LEASE`. A tick's job is
enqueued up to :data:`LOOKAHEAD` early as a delayed job with ``run_at`` = the tick.

Misfires: when no worker ran the schedules for more than :data:`DOWN_GAP` seconds (or, before
the queue's first pass ever, when a tick is due for that long), the ticks that fell due
meanwhile are *missed*, and the schedule's ``misfire`` policy decides:
``skip`` (no job for them; the next job is the next future tick), ``run_once`` (one job now
for all of them), ``catch_up`` (one job per missed tick, the latest :data:`MAX_CATCH_UP`).
Ticks that are merely late while workers run are always fired.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from cronsim import CronSim, CronSimError

from redkeep.errors import InvalidJob, scrub
from redkeep.queue.backoff import Backoff
from redkeep.queue.job import MAX_NAME, MAX_PRIORITY, decode_value, encode_value

if TYPE_CHECKING:
    from redkeep.queue.protocol import WorkerQueue

__all__ = [
    "CLAIM_LEASE",
    "DOWN_GAP",
    "IDLE_PASS",
    "LOOKAHEAD",
    "MAX_CATCH_UP",
    "Claimed",
    "Fire",
    "Misfire",
    "Schedule",
    "SchedulesMixin",
    "State",
    "drive_schedules",
    "job_options",
    "next_tick",
    "schedule_from",
    "tick_job_id",
]

log = logging.getLogger("redkeep.queue.schedules")

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
CHANGE_DEBOUNCE = 0.02
IDLE_PASS = DOWN_GAP / 2
"""Longest time between two scheduling passes of an idle worker (a pass records that the
schedules run: well within :data:`DOWN_GAP`, so that no tick is taken for missed)."""
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


# -- ticks ------------------------------------------------------------------------------------
def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidJob(
            f"tz: unknown time zone {tz!r} (an IANA name like 'Europe/Berlin')"
        ) from None


def _cron(expr: str, start_ms: int, tz: str, reverse: bool = False) -> Iterator[int]:
    start = datetime.fromtimestamp(start_ms / 1000.0, UTC).astimezone(_zone(tz))
    for dt in CronSim(expr, start, reverse=reverse):
        yield round(dt.timestamp() * 1000)


def ticks_from(s: Schedule, from_ms: int) -> Iterator[int]:
    """The schedule's ticks at or after ``from_ms``, in order, within start_at/end_at."""
    lo = from_ms if s.start_at is None else max(from_ms, round(s.start_at * 1000))
    end = _ms(s.end_at)
    if s.every is not None:
        every = round(s.every * 1000)
        anchor = lo if s.anchor is None else round(s.anchor * 1000)
        k = max(0, math.ceil((lo - anchor) / every))
        gen: Iterator[int] = (anchor + i * every for i in _count(k))
    else:
        assert s.cron is not None
        gen = (t for t in _cron(s.cron, lo - 1000, s.tz) if t >= lo)
    for t in gen:
        if end is not None and t > end:
            return
        yield t


def ticks_before(s: Schedule, to_ms: int) -> Iterator[int]:
    """The schedule's ticks at or before ``to_ms``, newest first, within start_at/end_at."""
    start, end = _ms(s.start_at), _ms(s.end_at)
    hi = to_ms if end is None else min(to_ms, end)
    if s.every is not None:
        every = round(s.every * 1000)
        anchor = 0 if s.anchor is None else round(s.anchor * 1000)
        k = math.floor((hi - anchor) / every)
        gen: Iterator[int] = (anchor + i * every for i in range(k, -1, -1))
    else:
        assert s.cron is not None
        gen = (t for t in _cron(s.cron, hi + 1000, s.tz, reverse=True) if t <= hi)
    for t in gen:
        if start is not None and t < start:
            return
        yield t


def next_tick(s: Schedule, after_ms: int) -> int | None:
    """The first tick strictly after ``after_ms`` (None: past end_at)."""
    return next(ticks_from(s, after_ms + 1), None)


def _count(start: int) -> Iterator[int]:
    i = start
    while True:
        yield i
        i += 1


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


@dataclass
class Plan:
    """What one pass does with a claimed schedule: the ticks to enqueue and the next tick."""

    ticks: list[int]
    next_ms: int | None


def plan_ticks(s: Schedule, tick0: int, now: int, down: bool) -> Plan:
    """Ticks to fire for a schedule whose next tick is ``tick0`` at server time ``now`` (ms);
    ``down``: no worker ran the schedules for a while (due ticks were missed)."""
    horizon = now + round(LOOKAHEAD * 1000)
    ticks: list[int] = []
    if down and tick0 <= now:
        if s.misfire == "run_once":
            latest = next(ticks_before(s, now), None)
            ticks = [latest] if latest is not None and latest >= tick0 else []
        elif s.misfire == "catch_up":
            missed = [t for t in _take(ticks_before(s, now), MAX_CATCH_UP) if t >= tick0]
            ticks = sorted(missed)
        start = now + 1
    else:
        start = tick0
    for t in ticks_from(s, start):
        if t > horizon or len(ticks) >= MAX_CATCH_UP + 10:
            return Plan(ticks, t)
        ticks.append(t)
    return Plan(ticks, None)


def _take(it: Iterator[int], n: int) -> list[int]:
    out = []
    for t in it:
        out.append(t)
        if len(out) >= n:
            break
    return out


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
    _zone(tz)
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


# -- the public API ---------------------------------------------------------------------------
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


class SchedulesMixin:
    """Schedules on a :class:`~redkeep.queue.base.JobQueue`; backends implement the hooks."""

    name: str
    max_payload_bytes: int
    _schedule_change: asyncio.Event | None = None

    def schedules_changed(self) -> asyncio.Event:
        """An event set when this process next learns that the queue's schedules changed
        (written here on the memory backend; on Redis, popped from the wake-up marker by an
        idle worker): the worker's scheduling pass, seconds apart when idle, then runs at once.
        """
        if self._schedule_change is None:
            self._schedule_change = asyncio.Event()
        return self._schedule_change

    def _schedules_touched(self) -> None:
        event, self._schedule_change = self._schedule_change, None
        if event is not None:
            event.set()

    async def schedule(
        self,
        schedule_id: str,
        name: str,
        payload: Any = None,
        *,
        cron: str | None = None,
        every: float | None = None,
        tz: str = "UTC",
        start_at: float | None = None,
        end_at: float | None = None,
        misfire: Misfire = "skip",
        priority: int = 0,
        max_attempts: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the jobs' timeout
        backoff: Backoff | float | None = None,
    ) -> Schedule:
        """Create or replace the schedule ``schedule_id`` (its state is kept: paused, last job;
        and its next tick when cron/every/tz/start_at/end_at are unchanged). Exactly one of
        ``cron`` (5 fields, or 6 with seconds) or ``every`` (seconds > 0). Bad input raises
        :class:`~redkeep.errors.InvalidJob` naming the field, and writes nothing."""
        validate(schedule_id, name, cron, every, tz, start_at, end_at, misfire, priority,
                 max_attempts, timeout)  # fmt: skip
        if isinstance(backoff, int | float) and not isinstance(backoff, bool):
            if not backoff >= 0:
                raise InvalidJob("backoff: seconds >= 0")
            backoff = Backoff(float(backoff), float(backoff), "fixed", jitter=False)
        elif backoff is not None and not isinstance(backoff, Backoff):
            raise InvalidJob("backoff: a Backoff or a number of seconds")
        text = encode_value(payload, self.max_payload_bytes)
        every_f = None if every is None else float(every)
        for _ in range(20):
            now = await self._server_ms()
            found = await self._sched_get(schedule_id)
            s = Schedule(
                schedule_id, name, self.name, decode_value(text), cron, every_f, tz,
                start_at, end_at, misfire, priority, max_attempts, timeout, backoff,
                created_at=now / 1000.0,
            )  # fmt: skip
            if found is None:
                state = State(1, None, False, "")
                anchor = start_at if start_at is not None else (now / 1000.0 + (every_f or 0))
                s = replace(s, anchor=anchor)
                state = replace(state, next_ms=next_tick(s, now - 1))
                expected = ""
            else:
                old, old_state = found
                s = replace(s, created_at=old.created_at, anchor=old.anchor)
                state = replace(old_state, version=old_state.version + 1)
                if s.timing() != old.timing():
                    anchor = start_at if start_at is not None else now / 1000.0 + (every_f or 0)
                    s = replace(s, anchor=anchor)
                    state = replace(state, next_ms=next_tick(s, now - 1))
                expected = old_state.encode()
            if await self._sched_write(schedule_id, expected, encode_definition(s, text), state):
                return _with_state(s, state)
        raise InvalidJob(f"schedule {schedule_id!r} keeps changing under this update; retry")

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """The schedule, or None."""
        found = await self._sched_get(str(schedule_id))
        return None if found is None else found[0]

    async def list_schedules(self) -> list[Schedule]:
        """Every schedule of the queue, by id."""
        return sorted(await self._sched_list(), key=lambda s: s.id)

    async def unschedule(self, schedule_id: str) -> bool:
        """Delete a schedule (jobs it enqueued stay); False when it does not exist."""
        return await self._sched_delete(str(schedule_id))

    async def pause_schedule(self, schedule_id: str) -> bool:
        """Stop enqueueing jobs for the schedule until :meth:`resume_schedule`; False when it
        does not exist."""
        return await self._sched_set_paused(str(schedule_id), True)

    async def resume_schedule(self, schedule_id: str) -> bool:
        """Resume a paused schedule at its next future tick (ticks while paused are skipped);
        False when it does not exist."""
        return await self._sched_set_paused(str(schedule_id), False)

    async def _sched_set_paused(self, schedule_id: str, paused: bool) -> bool:
        for _ in range(20):
            found = await self._sched_get(schedule_id)
            if found is None:
                return False
            s, state = found
            if state.paused == paused:
                return True
            nxt = None if paused else next_tick(s, await self._server_ms() - 1)
            new = State(state.version + 1, nxt, paused, state.last_job_id)
            if await self._sched_write(schedule_id, state.encode(), "", new):
                return True
        return False

    async def fire_schedules(self, worker_id: str) -> float:
        """One scheduling pass (the worker protocol; :func:`drive_schedules` calls it): claim
        the schedules due within :data:`LOOKAHEAD`, enqueue their ticks' jobs. Returns the
        seconds until the next pass should run."""
        claimed, now, prev, next_due = await self._sched_claim(
            worker_id, os.urandom(8).hex(), MAX_PER_PASS
        )
        gap = round(DOWN_GAP * 1000)
        fires = []
        for c in claimed:
            s, state = c.schedule, c.state
            if state.paused or state.next_ms is None:
                continue
            # missed ticks: no pass for DOWN_GAP (or, on the first pass ever, a tick due for
            # that long: the schedule was stored while no worker ran)
            down = now - prev > gap if prev is not None else now - state.next_ms > gap
            try:
                plan = plan_ticks(s, state.next_ms, now, down)
            except Exception as exc:  # a definition cron can no longer read: left as is
                log.warning("schedule %s: cannot compute its ticks (%s)", s.id, scrub(str(exc)))
                continue
            jobs = [(tick_job_id(s.id, t), t if t > now else 0) for t in plan.ticks]
            last = jobs[-1][0] if jobs else state.last_job_id
            new = State(state.version + 1, plan.next_ms, False, last)
            fires.append(Fire(s, state, new, jobs))
        if fires:
            await self._sched_fire(fires)
        if len(claimed) >= MAX_PER_PASS:
            return 0.0
        wait = IDLE_PASS if next_due is None else (next_due - now) / 1000.0 - LOOKAHEAD
        return min(IDLE_PASS, max(MIN_PASS, wait))

    # -- backend hooks -------------------------------------------------------------------------
    @abstractmethod
    async def _server_ms(self) -> int:
        """The backend's clock (Redis server time), in ms."""

    @abstractmethod
    async def _sched_get(self, schedule_id: str) -> tuple[Schedule, State] | None: ...

    @abstractmethod
    async def _sched_list(self) -> list[Schedule]: ...

    @abstractmethod
    async def _sched_write(
        self, schedule_id: str, expected: str, definition: str, state: State
    ) -> bool:
        """Write the state (and the definition unless ``""``) if the stored state is still
        ``expected`` (``""``: no such schedule); False otherwise."""

    @abstractmethod
    async def _sched_delete(self, schedule_id: str) -> bool: ...

    @abstractmethod
    async def _sched_claim(
        self, worker_id: str, request_id: str, limit: int
    ) -> tuple[list[Claimed], int, int | None, int | None]:
        """Claim up to ``limit`` schedules due within LOOKAHEAD and record this pass: (claimed,
        server now ms, the previous pass in ms or None, the next due tick after them in ms or
        None)."""

    @abstractmethod
    async def _sched_fire(self, fires: list[Fire]) -> None: ...


def _with_state(s: Schedule, state: State) -> Schedule:
    return replace(
        s,
        next_run_at=None if state.next_ms is None or state.paused else state.next_ms / 1000.0,
        paused=state.paused,
        last_job_id=state.last_job_id or None,
    )


def schedule_from(queue: str, schedule_id: str, definition: str, state_text: str) -> Schedule:
    state = State.decode(state_text) or State()
    return _with_state(decode_schedule(queue, schedule_id, definition, state), state)


def job_options(s: Schedule, default_attempts: int) -> Mapping[str, Any]:
    """Fields of the jobs a schedule enqueues."""
    return {
        "max_attempts": s.max_attempts or default_attempts,
        "priority": s.priority,
        "timeout": s.timeout,
        "backoff": orjson.dumps(s.backoff.to_list()).decode() if s.backoff else "",
    }


async def drive_schedules(
    queue: WorkerQueue,
    worker_id: str,
    stop: asyncio.Event,
    busy: Callable[[], bool] | None = None,
) -> None:
    """Run scheduling passes for ``queue`` until ``stop`` is set (each worker runs one per
    queue): when :meth:`~SchedulesMixin.fire_schedules` says, at most :data:`MAX_PASS` apart
    while ``busy()`` (the worker runs jobs: it may not be the one an idle wait tells of a
    schedule change), and at once after :meth:`~SchedulesMixin.schedules_changed`. Failures
    (an outage) are logged once and retried after a pause."""
    fire = getattr(queue, "fire_schedules", None)
    if fire is None:
        return
    failing = False
    while not stop.is_set():
        changed = queue.schedules_changed()
        try:
            delay = await fire(worker_id)
            failing = False
        except Exception as exc:
            if not failing:
                log.warning("queue %s: schedule pass failed (%s); retrying", queue.name,
                            scrub(str(exc)))  # fmt: skip
            failing = True
            delay = MAX_PASS * 2
        if busy is not None and busy():
            delay = min(delay, MAX_PASS)
        waits = [asyncio.ensure_future(e.wait()) for e in (stop, changed)]
        await asyncio.wait(waits, timeout=delay + 0.05 * os.urandom(1)[0] / 255,
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        for w in waits:
            w.cancel()
        if changed.is_set():
            await asyncio.sleep(CHANGE_DEBOUNCE)  # one pass for a burst of writes
