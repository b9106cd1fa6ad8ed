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

The schedule record, its stored form and validation are in :mod:`redkeep.queue.schedule_model`,
the tick arithmetic in :mod:`redkeep.queue.schedule_ticks`; this module holds the API and the
scheduling pass.
"""

from __future__ import annotations

import asyncio
import logging
import os
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from redkeep.errors import InvalidJob, scrub
from redkeep.queue.backoff import Backoff
from redkeep.queue.job import decode_value, encode_value
from redkeep.queue.schedule_model import (
    CLAIM_LEASE,
    DOWN_GAP,
    LOOKAHEAD,
    MAX_CATCH_UP,
    MAX_PASS,
    MAX_PER_PASS,
    MIN_PASS,
    Claimed,
    Fire,
    Misfire,
    Schedule,
    State,
    encode_definition,
    job_options,
    schedule_from,
    tick_job_id,
    validate,
    with_state,
)
from redkeep.queue.schedule_ticks import next_tick, plan_ticks

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

IDLE_PASS = DOWN_GAP / 2
"""Longest time between two scheduling passes of an idle worker (a pass records that the
schedules run: well within :data:`DOWN_GAP`, so that no tick is taken for missed)."""
CHANGE_DEBOUNCE = 0.02  # after a schedule change, before the pass: one pass for a burst


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
                return with_state(s, state)
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
            await asyncio.sleep(CHANGE_DEBOUNCE)
