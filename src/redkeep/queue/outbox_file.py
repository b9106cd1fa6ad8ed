"""The outbox file's format (:mod:`redkeep.queue.outbox_store`): its tables and statements,
opening it (WAL, ``synchronous=FULL``, tables created when absent), and the read-only check of an
existing file that refuses a file which is not a sound outbox without writing a byte of it."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from pathlib import Path

from redkeep.errors import OutboxCorrupted, OutboxError

__all__ = ["BUSY_TIMEOUT", "FORMAT", "INSERT", "SELECT_ONE", "SELECT_PAGE", "check", "connect"]

FORMAT = "1"
BUSY_TIMEOUT = 10.0  # seconds a write waits for another process's transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL,
    run_at_ms INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    backoff TEXT NOT NULL,
    timeout REAL,
    created_ms INTEGER NOT NULL,
    headers TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL,
    UNIQUE (queue, id)
);
CREATE INDEX IF NOT EXISTS jobs_in_order ON jobs (queue, seq);
CREATE TABLE IF NOT EXISTS queues (
    queue TEXT PRIMARY KEY, jobs INTEGER NOT NULL, bytes INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS job_held AFTER INSERT ON jobs BEGIN
    INSERT INTO queues (queue, jobs, bytes) VALUES (NEW.queue, 1, NEW.size)
    ON CONFLICT (queue) DO UPDATE SET jobs = jobs + 1, bytes = bytes + NEW.size;
END;
CREATE TRIGGER IF NOT EXISTS job_gone AFTER DELETE ON jobs BEGIN
    UPDATE queues SET jobs = jobs - 1, bytes = bytes - OLD.size WHERE queue = OLD.queue;
END;
"""
TABLES = {"meta", "jobs", "queues"}
SELECT_PAGE = (
    "SELECT seq, queue, id, name, payload, priority, run_at_ms, max_attempts, backoff, timeout, "
    "created_ms, headers FROM jobs WHERE queue = ? ORDER BY seq LIMIT ? OFFSET ?"
)
SELECT_ONE = (
    "SELECT seq, queue, id, name, payload, priority, run_at_ms, max_attempts, backoff, timeout, "
    "created_ms, headers FROM jobs WHERE queue = ? AND id = ?"
)
INSERT = (
    "INSERT INTO jobs (queue, id, name, payload, priority, run_at_ms, max_attempts, backoff, "
    "timeout, created_ms, headers, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (queue, id) DO NOTHING"
)


def connect(path: Path, namespace: str) -> sqlite3.Connection:
    """Open the outbox file ``path`` for ``namespace`` (checked first when it has content),
    creating it and its tables when absent."""
    if not path.parent.is_dir():
        raise OutboxError(f"cannot open outbox file {path}: {path.parent} is not a directory")
    if path.exists() and path.stat().st_size > 0:
        check(path, namespace)
    try:
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot open outbox file {path}: {exc}") from None
    # Switching a new file to WAL fails at once with "database is locked", without waiting
    # for the busy timeout, while another process holds a lock for the same switch (several
    # processes opening one new file together): retry until the timeout.
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            _set_up(con, path, namespace)
            return con
        except sqlite3.Error as exc:
            if _busy(exc) and time.monotonic() < deadline:
                if con.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        con.execute("ROLLBACK")
                time.sleep(random.uniform(0.01, 0.05))
                continue
            con.close()
            raise OutboxError(f"cannot set up outbox file {path}: {exc}") from None
        except BaseException:
            con.close()
            raise


def _set_up(con: sqlite3.Connection, path: Path, namespace: str) -> None:
    mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise OutboxError(f"outbox file {path}: cannot use WAL mode (got {mode!r})")
    con.execute("PRAGMA synchronous=FULL")
    con.executescript(f"BEGIN IMMEDIATE;{SCHEMA}")
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    if not meta:
        con.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("format", FORMAT), ("namespace", namespace)],
        )
    con.execute("COMMIT")


def _busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED, extended codes included: another connection holds a lock."""
    code = getattr(exc, "sqlite_errorcode", None)  # absent on errors raised by the module itself
    return code is not None and (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def check(path: Path, namespace: str) -> None:
    """Raise :class:`OutboxCorrupted` unless ``path`` is a sound outbox; reads only."""
    try:
        con = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT, isolation_level=None
        )
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot open outbox file {path}: {exc}") from None
    try:
        con.execute("BEGIN")  # one snapshot: other processes may be writing meanwhile
        problem = _problem(con, path, namespace)
    except sqlite3.OperationalError as exc:
        if _busy(exc):
            raise OutboxError(f"cannot read outbox file {path}: {exc}") from None
        problem = str(exc)
    except sqlite3.DatabaseError as exc:
        problem = str(exc)
    finally:
        con.close()
    if problem is not None:
        raise OutboxCorrupted(
            f"outbox file {path} is not a sound redkeep outbox ({problem}); it was left "
            "untouched: inspect it, or move it away to start with an empty outbox (the jobs in "
            "it are then not relayed)"
        )


def _problem(con: sqlite3.Connection, path: Path, namespace: str) -> str | None:
    checks = [str(r[0]) for r in con.execute("PRAGMA quick_check(5)").fetchall()]
    if checks != ["ok"]:
        return "; ".join(checks)
    tables = {str(r[0]) for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    tables.discard("sqlite_sequence")
    if not tables:
        return None  # an empty database: the tables are created on open
    if not tables >= TABLES:
        return f"tables {sorted(tables)}, expected {sorted(TABLES)}"
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("format") != FORMAT:
        return f"format {meta.get('format')!r}, this redkeep reads format {FORMAT!r}"
    if meta.get("namespace") != namespace:
        raise OutboxError(
            f"outbox file {path} holds jobs for key prefix {meta.get('namespace')!r}, "
            f"not {namespace!r}: use another file per key prefix"
        )
    counted = {
        str(q): (int(n), int(b))
        for q, n, b in con.execute("SELECT queue, COUNT(*), SUM(size) FROM jobs GROUP BY queue")
    }
    totals = {
        str(q): (int(n), int(b))
        for q, n, b in con.execute("SELECT queue, jobs, bytes FROM queues WHERE jobs != 0")
    }
    if counted != totals:
        return "the per-queue totals do not match the held jobs"
    return None
