"""Schedules' ticks: cron (with :mod:`cronsim` in the schedule's IANA zone, DST-correct) or
every N seconds, and what one scheduling pass fires (:func:`plan_ticks`, misfire policies)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from cronsim import CronSim

from redkeep.queue.schedule_model import LOOKAHEAD, MAX_CATCH_UP, Schedule, zone

__all__ = ["Plan", "next_tick", "plan_ticks", "ticks_before", "ticks_from"]


def _cron(expr: str, start_ms: int, tz: str, reverse: bool = False) -> Iterator[int]:
    start = datetime.fromtimestamp(start_ms / 1000.0, UTC).astimezone(zone(tz))
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
        gen: Iterator[int] = (anchor + i * every for i in itertools.count(k))
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
