"""The one JSON view of a job: what the HTTP API, ``redkeep jobs ... --json`` and snapshots show.

:func:`job_to_dict` turns a :class:`~redkeep.queue.job.Job` into a :class:`JobView`, a plain
dict of JSON values with the same field names everywhere; :func:`job_from_dict` reads one back
(snapshots, with the field names of older snapshots too). ``payload`` and ``result`` are in the
serializer's JSON form: JSON values as themselves, other Python values (datetimes, bytes,
sets...) as tagged objects that decode back exactly (see :mod:`redkeep.serialization`). The
fencing token of the current claim is internal and never shown. The HTTP API documents this
shape in its OpenAPI schema from the same :class:`JobView` type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from typing_extensions import TypedDict  # pydantic reads it on Python 3.11

from redkeep.errors import InvalidJob, RedkeepError
from redkeep.queue.backoff import Backoff
from redkeep.queue.job import NO_HEADERS, Job, JobFailure, JobStatus, check_headers
from redkeep.serialization import JsonSerializer

__all__ = ["JOB_FIELDS", "BackoffView", "JobErrorView", "JobView", "job_from_dict", "job_to_dict"]


class JobErrorView(TypedDict):
    """Why the last attempt failed: exception type, message and a bounded traceback."""

    type: str
    message: str
    traceback: str


class BackoffView(TypedDict):
    """The job's own retry backoff (null in a job view: the queue's default applies)."""

    base: float
    max_delay: float
    kind: str
    jitter: bool


class JobView(TypedDict):
    """A job as JSON. Times are seconds since the epoch (the Redis server's clock on Redis)."""

    id: str
    name: str
    queue: str
    status: JobStatus
    payload: Any
    payload_error: str | None
    priority: int
    attempts: int
    max_attempts: int
    created_at: float | None
    run_at: float | None
    started_at: float | None
    finished_at: float | None
    result: Any
    error: JobErrorView | None
    worker_id: str | None
    timeout: float | None
    backoff: BackoffView | None
    progress: Any
    headers: dict[str, str]
    dedup_key: str | None
    group: str | None
    depends_on: list[str]
    on_parent_failure: str | None


JOB_FIELDS: tuple[str, ...] = tuple(JobView.__annotations__)
"""The field names of a job view, in display order."""

# Values read from a store were within the limit when written; a view never refuses them.
_SERIALIZER = JsonSerializer(max_payload_bytes=2**62)


def _json_form(value: Any) -> Any:
    """``value`` in the serializer's JSON form (tagged objects for non-JSON types)."""
    if value is None or type(value) in (str, bool):
        return value
    return orjson.loads(_SERIALIZER.dumps(value))


def job_to_dict(job: Job) -> JobView:
    """The view of ``job`` (a new dict of JSON values)."""
    err = job.error
    backoff = job.backoff
    return {
        "id": job.id,
        "name": job.name,
        "queue": job.queue,
        "status": JobStatus(job.status),
        "payload": _json_form(job.payload),
        "payload_error": job.payload_error,
        "priority": job.priority,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "created_at": job.created_at,
        "run_at": job.run_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "result": _json_form(job.result),
        "error": None
        if err is None
        else {"type": err.type, "message": err.message, "traceback": err.traceback},
        "worker_id": job.worker_id,
        "timeout": job.timeout,
        "backoff": None
        if backoff is None
        else {
            "base": backoff.base,
            "max_delay": backoff.max_delay,
            "kind": backoff.kind,
            "jitter": backoff.jitter,
        },
        "progress": _json_form(job.progress),
        "headers": dict(job.headers),
        "dedup_key": job.dedup_key,
        "group": job.group,
        "depends_on": list(job.depends_on),
        "on_parent_failure": job.on_parent_failure,
    }


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


def _value(data: Mapping[str, Any], name: str) -> Any:
    value = data.get(name)
    if value is None or type(value) in (str, bool, int, float):
        return value
    try:
        return _SERIALIZER.loads(orjson.dumps(value))
    except (RedkeepError, TypeError) as exc:
        raise ValueError(f"job field {name!r} cannot be decoded ({exc})") from None


def _failure(error: Any) -> JobFailure | None:
    if error is None:
        return None
    if not isinstance(error, dict) or not isinstance(error.get("type"), str):
        raise ValueError("job field 'error' must be an object with 'type' and 'message'")
    tb = error.get("traceback", error.get("tb", ""))  # "tb": snapshots before the one view
    return JobFailure(error["type"], str(error.get("message", "")), str(tb))


def _backoff(backoff: Any) -> Backoff | None:
    if backoff is None:
        return None
    try:
        if isinstance(backoff, dict):
            return Backoff(
                float(backoff["base"]),
                float(backoff["max_delay"]),
                str(backoff["kind"]),
                bool(backoff["jitter"]),
            )
        return Backoff.from_list(backoff)  # a list: snapshots before the one view
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"job field 'backoff' is invalid ({exc})") from None


def _headers(headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    try:
        return check_headers(headers)
    except InvalidJob as exc:
        raise ValueError(f"job field 'headers' is invalid ({exc})") from None


def job_from_dict(data: Any, queue: str) -> Job:
    """Rebuild a :class:`Job` of ``queue`` from a job view; ValueError names a bad field."""
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
    if data.get("payload_error") is not None:  # restored, the job would run without its payload
        raise ValueError(f"the job's payload was unreadable ({_opt_str(data, 'payload_error')})")
    return Job(
        id=data["id"],
        name=data["name"],
        queue=queue,
        payload=_value(data, "payload"),
        status=status,
        priority=_int(data, "priority", 0),
        attempts=_int(data, "attempts", 0),
        max_attempts=_int(data, "max_attempts", 3),
        created_at=_opt_float(data, "created_at"),
        started_at=_opt_float(data, "started_at"),
        finished_at=_opt_float(data, "finished_at"),
        run_at=_opt_float(data, "run_at"),
        result=_value(data, "result"),
        error=_failure(data.get("error")),
        worker_id=_opt_str(data, "worker_id"),
        timeout=_opt_float(data, "timeout"),
        backoff=_backoff(data.get("backoff")),
        headers=_headers(data.get("headers")) or NO_HEADERS,
        dedup_key=_opt_str(data, "dedup_key"),
        group=_opt_str(data, "group"),
        depends_on=tuple(str(p) for p in data.get("depends_on") or ()),
        on_parent_failure=_opt_str(data, "on_parent_failure"),
    )
