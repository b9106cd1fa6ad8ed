"""Run a migration: validate, copy in batches, then verify counts per cache, queue and status."""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from redkeep.errors import RedkeepError
from redkeep.migrate.snapshot import CacheRecord, JobRecord, Line, Record, SnapshotError
from redkeep.migrate.sources import Source
from redkeep.migrate.targets import Target, WriteResult

__all__ = [
    "MigrationAborted",
    "MigrationReport",
    "Tally",
    "migrate",
]

OnError = Literal["abort", "skip"]


class MigrationAborted(RedkeepError):
    """The source has bad records and ``on_error="abort"``: nothing (more) was written."""

    def __init__(self, errors: list[SnapshotError], applied: int) -> None:
        first = errors[0]
        more = f" (and {len(errors) - 1} more bad line(s))" if len(errors) > 1 else ""
        done = "nothing was written" if applied == 0 else f"{applied} record(s) were applied"
        super().__init__(f"migration aborted: {first}{more}; {done}")
        self.errors = errors
        self.applied = applied


@dataclass
class Tally:
    """What happened to the source records of one cache, or one queue status."""

    source: int = 0
    copied: int = 0
    existed: int = 0
    expired: int = 0
    target: int | None = None
    """Count in the target after the run (None when the target cannot count)."""
    expiries: array[float] = field(default_factory=lambda: array("d"), repr=False)
    """Expiry times of the present entries that have a TTL (to discount them when they lapse)."""

    def add(self, result: WriteResult, expires_at: float | None = None) -> None:
        self.source += 1
        if result == "copied":
            self.copied += 1
        elif result == "existed":
            self.existed += 1
        else:
            self.expired += 1
            return
        if expires_at is not None:
            self.expiries.append(expires_at)

    def live(self, now: float) -> int:
        """Present entries that have not expired by ``now``."""
        return self.present - sum(1 for e in self.expiries if e <= now)

    @property
    def present(self) -> int:
        """Source records now in the target (copied by this run or already there)."""
        return self.copied + self.existed


@dataclass
class MigrationReport:
    """The outcome of :func:`migrate`: tallies, skipped bad lines, totals."""

    source: str
    target: str
    dry_run: bool = False
    caches: dict[str, Tally] = field(default_factory=dict)
    queues: dict[str, dict[str, Tally]] = field(default_factory=dict)
    skipped: list[SnapshotError] = field(default_factory=list)
    complete: bool = False

    def tally(self, record: Record) -> Tally:
        if isinstance(record, CacheRecord):
            return self.caches.setdefault(record.cache, Tally())
        per = self.queues.setdefault(record.queue, {})
        return per.setdefault(str(record.job.status), Tally())

    def _all(self) -> list[Tally]:
        return list(self.caches.values()) + [t for q in self.queues.values() for t in q.values()]

    @property
    def records(self) -> int:
        return sum(t.source for t in self._all())

    @property
    def copied(self) -> int:
        return sum(t.copied for t in self._all())

    @property
    def existed(self) -> int:
        return sum(t.existed for t in self._all())

    @property
    def expired(self) -> int:
        return sum(t.expired for t in self._all())

    verified: bool = True
    """Every cache holds at least its live source entries and every queue at least its source
    jobs (all statuses together: a worker on the target may move jobs between statuses)."""

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary (``redkeep migrate --json``)."""

        def row(t: Tally) -> dict[str, int | None]:
            return {
                "source": t.source,
                "copied": t.copied,
                "existed": t.existed,
                "expired": t.expired,
                "target": t.target,
            }

        return {
            "source": self.source,
            "target": self.target,
            "dry_run": self.dry_run,
            "complete": self.complete,
            "verified": self.verified,
            "records": self.records,
            "copied": self.copied,
            "existed": self.existed,
            "expired": self.expired,
            "caches": {n: row(t) for n, t in sorted(self.caches.items())},
            "queues": {
                q: {s: row(t) for s, t in sorted(st.items())}
                for q, st in sorted(self.queues.items())
            },
            "skipped_lines": [
                {"line": e.line, "where": e.where, "reason": e.reason} for e in self.skipped
            ],
        }


Progress = Callable[[int, int | None], None]
"""Called with (records done, total or None) after every batch."""


async def migrate(
    source: Source,
    target: Target,
    *,
    dry_run: bool = False,
    on_error: OnError = "abort",
    batch_size: int = 200,
    progress: Progress | None = None,
) -> MigrationReport:
    """Copy every record of ``source`` into ``target`` and verify the counts.

    With ``on_error="abort"``, a source that can be checked up front (a snapshot, an export)
    is validated completely first, and one bad line aborts the run before anything is written
    (:class:`MigrationAborted` lists the line numbers). With ``"skip"``, bad lines are skipped
    and listed in :attr:`MigrationReport.skipped`. Records are written in batches of
    ``batch_size`` (see :meth:`Target.write_many`); an interrupted run can simply be started
    again (writes are idempotent).
    """
    if on_error not in ("abort", "skip"):
        raise ValueError(f"on_error must be 'abort' or 'skip', got {on_error!r}")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    report = MigrationReport(source.display, target.display, dry_run=dry_run)
    await source.prepare()
    total, bad = await source.validate()
    if bad and on_error == "abort":
        raise MigrationAborted([b.error for b in bad if b.error is not None], 0)
    done = 0
    pending: list[Record] = []

    async def flush() -> None:
        nonlocal done
        if not pending:
            return
        results = await target.write_many(pending, dry_run=dry_run)
        for record, result in zip(pending, results, strict=True):
            expires = record.expires_at if isinstance(record, CacheRecord) else None
            report.tally(record).add(result, expires)
        done += len(pending)
        pending.clear()
        if progress is not None:
            progress(done, total if total >= 0 else None)

    line: Line
    async for line in source.lines():
        if line.error is not None:
            if on_error == "abort":
                await flush()
                raise MigrationAborted([line.error], done)
            report.skipped.append(line.error)
            continue
        assert line.record is not None
        pending.append(line.record)
        if len(pending) >= batch_size:
            await flush()
    await flush()
    await target.finish(dry_run=dry_run)
    await _verify(report, target)
    report.complete = True
    return report


async def _verify(report: MigrationReport, target: Target) -> None:
    ok = True
    for name, tally in report.caches.items():
        tally.target = await target.cache_count(name)
        # entries that lapsed before the count finished are not expected in the target
        if tally.target is not None and tally.target < tally.live(time.time()):
            ok = False
    for queue, statuses in report.queues.items():
        counts = await target.queue_counts(queue)
        if counts is None:
            continue
        for status, tally in statuses.items():
            tally.target = counts.get(status, 0)
        present = sum(t.present for t in statuses.values())
        if sum(counts.values()) < present:
            ok = False
    report.verified = ok or report.dry_run


def describe(record: Record) -> str:
    """A short label of a record for messages."""
    if isinstance(record, JobRecord):
        return f"job {record.job.id!r} of queue {record.queue!r}"
    return f"key {record.key!r} of cache {record.cache!r}"
