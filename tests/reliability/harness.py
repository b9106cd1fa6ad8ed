"""Scenario harness of the reliability suite: scale, bounded loops, latencies, figures.

Each scenario runs SHORT by default (``make test``) and FULL when ``REDKEEP_RELIABILITY=full``
(``make reliability``). Every scenario records its figures with :class:`Figures`; they land as
one JSON file per scenario under :func:`results_dir`, and ``python -m tests.reliability.report``
renders them into ``docs/reliability.md``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.support import waits

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
MODE = "full" if os.environ.get("REDKEEP_RELIABILITY", "").lower() == "full" else "short"
FULL = MODE == "full"


def scale(short: T, full: T) -> T:
    """Pick the short (CI) or the full (``make reliability``) value of a bound."""
    return full if FULL else short


def results_dir(mode: str = MODE) -> Path:
    """Directory holding one ``<scenario>.json`` per scenario for ``mode``."""
    base = os.environ.get("REDKEEP_RELIABILITY_RESULTS")
    path = Path(base) if base else ROOT / "tmp" / "reliability"
    return path / mode


# ---------------------------------------------------------------------------------------------
# Bounded loops


class Deadline:
    """A point in (monotonic) time; loops check it so that none can run unbounded."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.monotonic()
        self.end = self.start + seconds

    @property
    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start


def bounded(max_count: int, max_seconds: float) -> Iterator[int]:
    """Yield 0, 1, 2... until ``max_count`` iterations or ``max_seconds`` have passed."""
    deadline = Deadline(max_seconds)
    for i in range(max_count):
        if deadline.expired:
            return
        yield i


async def wait_until(
    predicate: Callable[[], Awaitable[bool]],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
) -> float:
    """Poll ``predicate`` until it is true; returns the seconds waited, fails after ``timeout``
    naming ``what`` (:func:`tests.support.waits.wait_until`)."""
    return await waits.wait_until(predicate, timeout, interval=interval, what=what)


# ---------------------------------------------------------------------------------------------
# Latencies


@dataclass
class Latencies:
    """Collected call durations in seconds, with nearest-rank percentiles."""

    samples: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)

    def extend(self, other: Latencies) -> None:
        self.samples.extend(other.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile (0-100) by nearest rank; 0.0 when empty."""
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1]

    def summary(self) -> dict[str, float | int]:
        """Count and p50/p99/max in milliseconds, rounded for the report."""
        return {
            "count": len(self.samples),
            "p50_ms": round(self.percentile(50) * 1000, 3),
            "p99_ms": round(self.percentile(99) * 1000, 3),
            "max_ms": round(max(self.samples, default=0.0) * 1000, 3),
        }


# ---------------------------------------------------------------------------------------------
# Figures


class Figures:
    """Figures of one scenario, written to ``<results_dir>/<scenario>.json`` on every update.

    Writing eagerly means a scenario that fails half-way still leaves what it measured; the
    suite's conftest adds the outcome (passed/failed) once the test has run. A scenario made of
    several tests gives each a ``part``; the report merges the parts.
    """

    def __init__(
        self, scenario: str, title: str, directory: Path | None = None, part: str | None = None
    ) -> None:
        self.scenario = scenario
        name = f"{scenario}--{part}" if part else scenario
        self.path = (directory or results_dir()) / f"{name}.json"
        self.data: dict[str, Any] = {
            "scenario": scenario,
            "part": part,
            "title": title,
            "mode": MODE,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "figures": {},
            "bounds": {},
            "outcome": "running",
        }
        self._t0 = time.monotonic()
        self._write()

    def record(self, **figures: Any) -> None:
        """Add or overwrite measured figures (jobs, kills, duplicates, p99_ms, ...)."""
        self.data["figures"].update(figures)
        self.data["seconds"] = round(time.monotonic() - self._t0, 2)
        self._write()

    def bounds(self, **bounds: Any) -> None:
        """Record the bounds (sizes, time limits) the scenario ran with."""
        self.data["bounds"].update(bounds)
        self._write()

    def meta(self, **meta: Any) -> None:
        """Record facts about the environment (Redis version, ...)."""
        self.data.update(meta)
        self._write()

    def finish(self, outcome: str, detail: str | None = None) -> None:
        self.data["outcome"] = outcome
        self.data["seconds"] = round(time.monotonic() - self._t0, 2)
        if detail:
            self.data["detail"] = detail[:500]
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True, default=str))
        tmp.replace(self.path)
