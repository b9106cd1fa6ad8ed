"""The redkeep snapshot format: JSON Lines, one record per line.

A snapshot is UTF-8 text. Line 1 is a header, then one line per cache entry or job in any
order, then an ``end`` record carrying the number of records, so that a truncated file is
detected::

    {"kind":"header","format":"redkeep-snapshot","version":2,"created_at":1732700000.0}
    {"kind":"cache","cache":"sessions","key":"u:1","value":{"a":1},"expires_at":1732703600.0}
    {"kind":"job","queue":"default","job":{"id":"42","name":"email","status":"waiting",...}}
    {"kind":"end","records":2}

``value`` is the cache value in the serializer's JSON form (tagged types such as datetimes or
bytes keep their tags, see :mod:`redkeep.serialization`); so are a job's ``payload`` and
``result`` from version 2 on (version 1 files, whose job values are plain JSON, are still
read). ``expires_at`` is an absolute time (seconds since the epoch) or null, so an entry keeps
its remaining TTL however long the snapshot waits before it is loaded, and an entry that
expired in the meantime is not restored.
Jobs keep their status, attempts, priority, run_at, times, result and error. No pickle.
A ``{"kind":"error","where":...,"reason":...}`` line stands for a record the writer could not
read; readers report it as a bad line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import orjson

from redkeep.cache.base import check_name
from redkeep.errors import RedkeepError
from redkeep.queue.backoff import Backoff
from redkeep.queue.job import Job, JobFailure, JobStatus
from redkeep.queue.keys import validate_queue_name
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
VERSION = 2
READABLE_VERSIONS = (1, 2)


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


# -- jobs <-> plain dicts ------------------------------------------------------------------------

_JOB_FIELDS = (
    "id",
    "name",
    "payload",
    "status",
    "priority",
    "attempts",
    "max_attempts",
    "created_at",
    "started_at",
    "finished_at",
    "run_at",
    "result",
    "error",
    "worker_id",
    "timeout",
    "backoff",
)


def job_to_dict(job: Job) -> dict[str, Any]:
    """A JSON-ready dict of ``job`` (the internal fencing token is left out)."""
    out: dict[str, Any] = {name: getattr(job, name) for name in _JOB_FIELDS}
    out["status"] = JobStatus(job.status).value
    err = job.error
    out["error"] = (
        None if err is None else {"type": err.type, "message": err.message, "tb": err.traceback}
    )
    out["backoff"] = None if job.backoff is None else job.backoff.to_list()
    return out


def _opt_float(data: Mapping[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"job field {name!r} must be a number or null, got {value!r}")
    return float(value)


def _int(data: Mapping[str, Any], name: str, default: int) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"job field {name!r} must be an integer, got {value!r}")
    return value


def _opt_str(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"job field {name!r} must be a string or null, got {value!r}")
    return value


def job_from_dict(data: Any, queue: str) -> Job:
    """Rebuild a :class:`Job` from :func:`job_to_dict` output; ValueError names a bad field."""
    if not isinstance(data, dict):
        raise ValueError("'job' must be an object")
    for name in ("id", "name"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise ValueError(f"job field {name!r} must be a non-empty string")
    try:
        status = JobStatus(str(data.get("status")))
    except ValueError:
        names = ", ".join(s.value for s in JobStatus)
        raise ValueError(f"job status {data.get('status')!r} is not one of {names}") from None
    error = data.get("error")
    failure = None
    if error is not None:
        if not isinstance(error, dict) or not isinstance(error.get("type"), str):
            raise ValueError("job field 'error' must be an object with 'type' and 'message'")
        failure = JobFailure(error["type"], str(error.get("message", "")), str(error.get("tb", "")))
    backoff = data.get("backoff")
    try:
        parsed_backoff = None if backoff is None else Backoff.from_list(backoff)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"job field 'backoff' is invalid ({exc})") from None
    return Job(
        id=data["id"],
        name=data["name"],
        queue=queue,
        payload=data.get("payload"),
        status=status,
        priority=_int(data, "priority", 0),
        attempts=_int(data, "attempts", 0),
        max_attempts=_int(data, "max_attempts", 3),
        created_at=_opt_float(data, "created_at"),
        started_at=_opt_float(data, "started_at"),
        finished_at=_opt_float(data, "finished_at"),
        run_at=_opt_float(data, "run_at"),
        result=data.get("result"),
        error=failure,
        worker_id=_opt_str(data, "worker_id"),
        timeout=_opt_float(data, "timeout"),
        backoff=parsed_backoff,
    )


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
        job = job_to_dict(record.job)
        dumps = (serializer or _SERIALIZER).dumps  # job values are exact, as in the queue
        job["payload"] = orjson.Fragment(dumps(record.job.payload))
        job["result"] = orjson.Fragment(dumps(record.job.result))
        obj = {"kind": "job", "queue": record.queue, "job": job}
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


def decode_record(obj: Any, serializer: Serializer | None = None, version: int = VERSION) -> Record:
    """Validate one parsed record (kind ``cache`` or ``job``) of a file of ``version``;
    ValueError says what is wrong."""
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
        job = job_from_dict(obj.get("job"), queue)
        if version >= 2 and (job.payload is not None or job.result is not None):
            loads = (serializer or _SERIALIZER).loads
            try:
                job = replace(
                    job,
                    payload=loads(orjson.dumps(job.payload)),
                    result=loads(orjson.dumps(job.result)),
                )
            except RedkeepError as exc:
                raise ValueError(f"job payload or result cannot be decoded ({exc})") from None
        return JobRecord(queue, job)
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
    version = VERSION
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
            if obj.get("format") != FORMAT or obj.get("version") not in READABLE_VERSIONS:
                yield Line(
                    number,
                    error=SnapshotError(
                        number,
                        f"{name} is not a {FORMAT} file of version "
                        f"{' or '.join(map(str, READABLE_VERSIONS))} "
                        f"(format {obj.get('format')!r}, version {obj.get('version')!r})",
                    ),
                )
            else:
                version = int(obj["version"])
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
            record = decode_record(obj, serializer, version)
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
