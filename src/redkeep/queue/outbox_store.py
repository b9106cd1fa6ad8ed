"""The SQLite file behind the enqueue outbox (:mod:`redkeep.queue.outbox`).

One file holds the jobs that could not reach Redis, in enqueue order (``seq``, never reused),
in WAL mode with ``synchronous=FULL``: a write that returned survives a process kill and a power
cut. Every statement runs on one thread of this store; writes that arrive while another is being
committed are grouped into one transaction (one fsync for the group). Several processes may share
the file: SQLite serialises their transactions, the job and byte limits are checked inside each
transaction, and :meth:`OutboxStore.try_lock_relay` (``flock`` on ``<file>.relay-lock``, held for
one relay round) lets one process at a time relay.

Opening checks an existing file read-only first (``PRAGMA quick_check``, the tables and the
running totals) and raises :class:`~redkeep.errors.OutboxCorrupted` without writing a byte of it
(:mod:`redkeep.queue.outbox_file`: the format, opening and that check).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from redkeep.errors import OutboxError, OutboxFull
from redkeep.queue.outbox_file import FORMAT, INSERT, SELECT_ONE, SELECT_PAGE, connect

__all__ = ["FORMAT", "HeldJob", "NewJob", "OutboxStore", "QueueDepth"]

T = TypeVar("T")


class NewJob(NamedTuple):
    """A job to hold: the encoded fields of one enqueue (``run_at_ms`` absolute, 0 = now)."""

    id: str
    name: str
    payload: str
    priority: int
    run_at_ms: int
    max_attempts: int
    backoff: str
    timeout: float | None
    created_ms: int
    headers: str = ""
    """The job's headers as a JSON object, or ``""`` for none."""

    @property
    def size(self) -> int:
        """The bytes this job counts against the limit."""
        return (
            len(self.id) + len(self.name) + len(self.payload) + len(self.backoff)
            + len(self.headers) + 64
        )  # fmt: skip


class HeldJob(NamedTuple):
    """A job read back from the outbox: its place in enqueue order, its queue, its fields."""

    seq: int
    queue: str
    job: NewJob

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> HeldJob:
        """From a row of ``SELECT seq, queue, <the NewJob fields>``."""
        return cls(row[0], row[1], NewJob(*row[2:]))


@dataclass(frozen=True)
class QueueDepth:
    """Held jobs of one queue: how many, their bytes and the oldest one's enqueue time."""

    jobs: int
    bytes: int
    oldest_ms: int | None


class _Write(NamedTuple):
    queue: str
    jobs: list[NewJob]
    future: asyncio.Future[list[int | HeldJob]]


class OutboxStore:
    """The outbox file. Create with :meth:`open`; every method but the lock runs on its thread."""

    def __init__(self, path: Path, namespace: str, max_jobs: int, max_bytes: int) -> None:
        self.path = path
        self.namespace = namespace
        self.max_jobs = max_jobs
        self.max_bytes = max_bytes
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="redkeep-outbox")
        self._con: sqlite3.Connection | None = None
        self._writes: list[_Write] = []
        self._writer: asyncio.Task[None] | None = None
        self._lock_fd: int | None = None
        self._locked = False
        _STORES.add(self)

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], namespace: str, max_jobs: int, max_bytes: int
    ) -> OutboxStore:
        """Check (read-only) and open the file, creating it and its tables when absent."""
        store = cls(Path(path), namespace, max_jobs, max_bytes)
        try:
            await store._run(store._open)
        except BaseException:
            store._thread.shutdown(wait=False)
            raise
        return store

    async def close(self) -> None:
        """Finish pending writes, release the relay lock, close the file."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer
        self.unlock_relay()
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)
        await self._run(self._close)
        self._thread.shutdown(wait=True)

    # -- writes -----------------------------------------------------------------------------
    def add(self, queue: str, jobs: list[NewJob]) -> asyncio.Future[list[int | HeldJob]]:
        """Hold ``jobs`` of ``queue``, all or none. The future gives, per job, its ``seq`` or
        the job already held with that id; it fails with :class:`OutboxFull` when they do not
        fit, or :class:`OutboxError` when the file cannot be written."""
        future: asyncio.Future[list[int | HeldJob]] = asyncio.get_running_loop().create_future()
        self._writes.append(_Write(queue, jobs, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="redkeep-outbox-write")
        return future

    async def remove_through(self, queue: str, seq: int) -> int:
        """Delete the jobs of ``queue`` up to ``seq`` (once relayed); how many were deleted."""
        return await self._run(self._remove_through, queue, seq)

    # -- reads ------------------------------------------------------------------------------
    async def head(self, queue: str, limit: int) -> list[HeldJob]:
        """The first ``limit`` jobs of ``queue`` in enqueue order."""
        return await self.page(queue, 0, limit)

    async def page(self, queue: str, offset: int, limit: int) -> list[HeldJob]:
        """Jobs of ``queue`` in enqueue order, from ``offset``."""
        return await self._run(self._rows, SELECT_PAGE, (queue, limit, offset))

    async def get(self, queue: str, job_id: str) -> HeldJob | None:
        """The held job ``job_id`` of ``queue``, or None."""
        rows = await self._run(self._rows, SELECT_ONE, (queue, job_id))
        return rows[0] if rows else None

    async def queues(self) -> list[str]:
        """The queues with held jobs."""
        return await self._run(self._queues)

    async def count(self, queue: str) -> int:
        """How many jobs of ``queue`` are held."""
        return await self._run(self._count, queue)

    async def depths(self) -> dict[str, QueueDepth]:
        """Every queue with held jobs: count, bytes and oldest enqueue time."""
        return await self._run(self._depths)

    async def relayed_through(self, queue: str) -> int:
        """A ``seq`` such that every job of ``queue`` enqueued up to it has left the outbox."""
        return await self._run(self._relayed_through, queue)

    # -- relay lock -------------------------------------------------------------------------
    def try_lock_relay(self) -> bool:
        """Take the relay lock unless another process holds it (never blocks); True when taken.
        Hold it for one relay round, then :meth:`unlock_relay`."""
        if self._locked:
            return True
        if self._lock_fd is None:
            self._lock_fd = os.open(f"{self.path}.relay-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        self._locked = True
        return True

    def unlock_relay(self) -> None:
        """Release the relay lock (the OS releases it too when the process dies)."""
        if self._locked and self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        self._locked = False

    def _forked(self) -> None:
        # A forked child shares the lock's open file description with its parent: close the
        # child's copy without unlocking, so that the lock goes with the parent as it should.
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self._locked = False

    # -- on the store's thread --------------------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _open(self) -> None:
        self._con = connect(self.path, self.namespace)

    def _close(self) -> None:
        if self._con is not None:
            con, self._con = self._con, None
            con.close()

    def _db(self) -> sqlite3.Connection:
        if self._con is None:
            raise OutboxError(f"outbox file {self.path} is closed")
        return self._con

    @contextlib.contextmanager
    def _sql(self, what: str, begin: str = "") -> Iterator[sqlite3.Connection]:
        """The connection; in a transaction when ``begin`` is given (committed at the end,
        rolled back on an error). An SQLite error becomes an :class:`OutboxError` saying the
        file could not be ``what`` ("read", "write")."""
        con = self._db()
        try:
            if begin:
                con.execute(begin)
            yield con
            if begin:
                con.execute("COMMIT")
        except sqlite3.Error as exc:
            if begin:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
            raise OutboxError(f"cannot {what} outbox file {self.path}: {exc}") from None

    async def _write_all(self) -> None:
        while self._writes:
            batch, self._writes = self._writes, []
            try:
                results = await self._run(self._apply, batch)
            except Exception as exc:
                error = exc if isinstance(exc, OutboxError) else OutboxError(str(exc))
                results = [error] * len(batch)
            for write, result in zip(batch, results, strict=True):
                if write.future.done():  # the caller was cancelled; the jobs are held anyway
                    continue
                if isinstance(result, Exception):
                    write.future.set_exception(result)
                else:
                    write.future.set_result(result)

    def _apply(self, batch: list[_Write]) -> list[list[int | HeldJob] | Exception]:
        results: list[list[int | HeldJob] | Exception] = []
        with self._sql("write", "BEGIN IMMEDIATE") as con:
            jobs, size = con.execute(
                "SELECT COALESCE(SUM(jobs), 0), COALESCE(SUM(bytes), 0) FROM queues"
            ).fetchone()
            for write in batch:
                need = sum(j.size for j in write.jobs)
                if jobs + len(write.jobs) > self.max_jobs or size + need > self.max_bytes:
                    results.append(self._full(len(write.jobs), need, jobs, size))
                    continue
                out: list[int | HeldJob] = []
                for j in write.jobs:
                    cur = con.execute(INSERT, (write.queue, *j, j.size))
                    if cur.rowcount == 1 and cur.lastrowid is not None:
                        out.append(cur.lastrowid)
                        jobs += 1
                        size += j.size
                    else:  # already held under that id (idempotent enqueue)
                        row = con.execute(SELECT_ONE, (write.queue, j.id)).fetchone()
                        out.append(HeldJob.from_row(row))
                results.append(out)
        return results

    def _full(self, n: int, need: int, jobs: int, size: int) -> OutboxFull:
        what = (
            f"{jobs} of {self.max_jobs} jobs held"
            if jobs + n > self.max_jobs
            else f"{size} of {self.max_bytes} bytes held"
        )
        return OutboxFull(
            f"Redis is unreachable and the enqueue outbox {self.path} is full ({what}; "
            f"{n} job(s) of {need} bytes refused): retry later or raise "
            "REDKEEP_QUEUE_OUTBOX_MAX_JOBS / _MAX_BYTES",
            jobs=jobs,
            max_jobs=self.max_jobs,
            size=size,
            max_bytes=self.max_bytes,
        )

    def _remove_through(self, queue: str, seq: int) -> int:
        with self._sql("write", "BEGIN IMMEDIATE") as con:
            n = con.execute("DELETE FROM jobs WHERE queue = ? AND seq <= ?", (queue, seq)).rowcount
            con.execute("DELETE FROM queues WHERE queue = ? AND jobs <= 0", (queue,))
        return int(n)

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[HeldJob]:
        with self._sql("read") as con:
            return [HeldJob.from_row(r) for r in con.execute(sql, args).fetchall()]

    def _queues(self) -> list[str]:
        with self._sql("read") as con:
            rows = con.execute("SELECT queue FROM queues WHERE jobs > 0 ORDER BY queue")
            return [str(r[0]) for r in rows.fetchall()]

    def _count(self, queue: str) -> int:
        with self._sql("read") as con:
            row = con.execute("SELECT jobs FROM queues WHERE queue = ?", (queue,)).fetchone()
        return int(row[0]) if row else 0

    def _depths(self) -> dict[str, QueueDepth]:
        sql = (
            "SELECT q.queue, q.jobs, q.bytes, (SELECT j.created_ms FROM jobs j "
            "WHERE j.queue = q.queue ORDER BY j.seq LIMIT 1) FROM queues q WHERE q.jobs > 0 "
            "ORDER BY q.queue"
        )
        with self._sql("read") as con:
            rows = con.execute(sql).fetchall()
        return {str(q): QueueDepth(int(n), int(b), o) for q, n, b, o in rows}

    def _relayed_through(self, queue: str) -> int:
        with self._sql("read", "BEGIN") as con:  # one snapshot for both reads
            first = con.execute(
                "SELECT seq FROM jobs WHERE queue = ? ORDER BY seq LIMIT 1", (queue,)
            ).fetchone()
            last = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").fetchone()
        if first is not None:
            return int(first[0]) - 1
        return int(last[0]) if last is not None else 0


_STORES: weakref.WeakSet[OutboxStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
