"""The redkeep snapshot format: JSON Lines, one record per line.

A snapshot is UTF-8 text. Line 1 is a header, then one line per cache entry or job in any
order, then an ``end`` record carrying the number of records, so that a truncated file is
detected::

    {"kind":"header","format":"redkeep-snapshot","version":1,"created_at":1732700000.0}
    {"kind":"cache","cache":"sessions","key":"u:1","value":{"a":1},"expires_at":1732703600.0}
    {"kind":"job","queue":"default","job":{"id":"42","name":"email","status":"waiting",...}}
    {"kind":"end","records":2}

``value`` is the cache value in the serializer's JSON form (tagged types such as datetimes or
bytes keep their tags, see :mod:`redkeep.serialization`). ``expires_at`` is an absolute time
(seconds since the epoch) or null, so an entry keeps its remaining TTL however long the
snapshot waits before it is loaded, and an entry that expired in the meantime is not restored.
Jobs keep their status, attempts, priority, run_at, times, result and error; ``job`` is the one
job view of :mod:`redkeep.queue.view` (the same JSON as the HTTP API and ``redkeep jobs show
--json``). No pickle.
A ``{"kind":"error","where":...,"reason":...}`` line stands for a record the writer could not
read; readers report it as a bad line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from redkeep.cache.base import check_name
from redkeep.errors import RedkeepError
from redkeep.queue.job import Job
from redkeep.queue.keys import validate_queue_name
from redkeep.queue.view import job_from_dict, job_to_dict
from redkeep.serialization import JsonSerializer, Serializer

__all__ = [
    "FORMAT",
    "VERSION",
    "CacheRecord",
    "JobRecord",
    "Record",
    "SnapshotError",
    "SnapshotWriter",
    "decode_record",
    "encode_record",
    "job_from_dict",
    "job_to_dict",
    "read_snapshot",
]

FORMAT = "redkeep-snapshot"
VERSION = 1


class SnapshotError(RedkeepError, ValueError):
    """A record is not valid. ``line`` is its 1-based line number in a snapshot file, or 0 for
    a record read from a live store, which ``where`` then names (e.g. ``cache 'a' key 'k'``)."""

    def __init__(self, line: int, reason: str, where: str | None = None) -> None:
        super().__init__(f"{where or f'snapshot line {line}'}: {reason}")
        self.line = line
        self.reason = reason
        self.where = where


@dataclass(frozen=True)
class CacheRecord:
    """One cache entry: ``expires_at`` is seconds since the epoch, or None for no expiry."""

    cache: str
    key: str
    value: Any
    expires_at: float | None = None

    def remaining(self, now: float | None = None) -> float | None:
        """Seconds left to live (may be <= 0 when expired); None without expiry."""
        if self.expires_at is None:
            return None
        return self.expires_at - (time.time() if now is None else now)


@dataclass(frozen=True)
class JobRecord:
    """One job of queue ``queue``."""

    queue: str
    job: Job


Record = CacheRecord | JobRecord


# -- records <-> lines ---------------------------------------------------------------------------


def encode_record(record: Record, serializer: Serializer | None = None) -> bytes:
    """One snapshot line (with its trailing newline) for ``record``."""
    if isinstance(record, CacheRecord):
        text = (serializer or _SERIALIZER).dumps(record.value)
        obj: dict[str, Any] = {
            "kind": "cache",
            "cache": record.cache,
            "key": record.key,
            "value": orjson.Fragment(text),
            "expires_at": record.expires_at,
        }
    else:
        obj = {"kind": "job", "queue": record.queue, "job": job_to_dict(record.job)}
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


def error_line(error: SnapshotError) -> bytes:
    """A record standing for one the writer could not read (reported by every reader)."""
    obj = {"kind": "error", "where": error.where, "reason": error.reason}
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


def header_line(**extra: Any) -> bytes:
    """The first line of a snapshot."""
    obj = {"kind": "header", "format": FORMAT, "version": VERSION, "created_at": time.time()}
    obj.update(extra)
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


def end_line(records: int) -> bytes:
    """The last line of a complete snapshot."""
    return orjson.dumps({"kind": "end", "records": records}, option=orjson.OPT_APPEND_NEWLINE)


_SERIALIZER = JsonSerializer(max_payload_bytes=2**62)


def decode_record(obj: Any, serializer: Serializer | None = None) -> Record:
    """Validate one parsed record (kind ``cache`` or ``job``); ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("a record must be a JSON object")
    kind = obj.get("kind")
    if kind == "cache":
        cache, key = obj.get("cache"), obj.get("key")
        if not isinstance(cache, str):
            raise ValueError("cache record needs a string 'cache'")
        check_name(cache)
        if not isinstance(key, str) or not key:
            raise ValueError("cache record needs a non-empty string 'key'")
        if "value" not in obj:
            raise ValueError("cache record has no 'value'")
        expires = obj.get("expires_at")
        if expires is not None and (
            isinstance(expires, bool) or not isinstance(expires, int | float)
        ):
            raise ValueError(f"'expires_at' must be a number or null, got {expires!r}")
        try:
            value = (serializer or _SERIALIZER).loads(orjson.dumps(obj["value"]))
        except RedkeepError as exc:
            raise ValueError(f"cache value cannot be decoded ({exc})") from None
        return CacheRecord(cache, key, value, None if expires is None else float(expires))
    if kind == "job":
        queue = obj.get("queue")
        if not isinstance(queue, str):
            raise ValueError("job record needs a string 'queue'")
        validate_queue_name(queue)
        return JobRecord(queue, job_from_dict(obj.get("job"), queue))
    if kind == "error":  # the writer could not read this record from its store
        raise ValueError(f"the source could not export {obj.get('where')}: {obj.get('reason')}")
    raise ValueError(f"unknown record kind {kind!r} (expected 'cache' or 'job')")


@dataclass
class Line:
    """One parsed snapshot line: a record, or the error that made it unusable."""

    number: int
    record: Record | None = None
    error: SnapshotError | None = None


def read_snapshot(
    stream: IO[bytes], serializer: Serializer | None = None, *, name: str = "snapshot"
) -> Iterator[Line]:
    """Parse a snapshot stream line by line; bad lines come back with ``error`` set.

    A missing header, a header of another format or version, or a missing ``end`` record are
    reported as errors too (the last with the number of the line after the end of the file).
    """
    count = 0
    seen_header = False
    ended = False
    number = 0
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield Line(number, error=SnapshotError(number, f"not valid JSON ({exc})"))
            count += 1
            continue
        kind = obj.get("kind") if isinstance(obj, dict) else None
        if kind == "header":
            if obj.get("format") != FORMAT or obj.get("version") != VERSION:
                yield Line(
                    number,
                    error=SnapshotError(
                        number,
                        f"{name} is not a {FORMAT} version {VERSION} file "
                        f"(format {obj.get('format')!r}, version {obj.get('version')!r})",
                    ),
                )
            seen_header = True
            continue
        if not seen_header:
            seen_header = True
            yield Line(number, error=SnapshotError(number, f"{name} has no header line"))
        if kind == "end":
            ended = True
            if obj.get("records") != count:
                yield Line(
                    number,
                    error=SnapshotError(
                        number,
                        f"end record counts {obj.get('records')!r} records, the file has {count}",
                    ),
                )
            continue
        if ended:
            yield Line(number, error=SnapshotError(number, "record after the end record"))
            continue
        try:
            record = decode_record(obj, serializer)
        except (ValueError, TypeError) as exc:
            yield Line(number, error=SnapshotError(number, str(exc)))
            count += 1
            continue
        count += 1
        yield Line(number, record=record)
    if not ended:
        yield Line(
            number + 1,
            error=SnapshotError(number + 1, f"{name} is truncated: no end record"),
        )


class SnapshotWriter:
    """Write records to a snapshot file atomically (a temp file renamed on :meth:`close`)."""

    def __init__(self, path: str | Path, serializer: Serializer | None = None) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.name}.partial")
        self._serializer = serializer
        self._file: IO[bytes] = self._tmp.open("wb")
        self._file.write(header_line())
        self.records = 0

    def write(self, record: Record) -> None:
        """Append one record."""
        self._file.write(encode_record(record, self._serializer))
        self.records += 1

    def close(self) -> None:
        """Write the end record and move the file into place."""
        if self._file.closed:
            return
        self._file.write(end_line(self.records))
        self._file.flush()
        self._file.close()
        self._tmp.replace(self.path)

    def abort(self) -> None:
        """Drop the partial file."""
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)
