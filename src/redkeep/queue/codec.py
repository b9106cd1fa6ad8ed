"""Job records as stored in Redis (layout 2, see :mod:`redkeep.queue.keys`) <-> :class:`Job`.

A job is four fields of per-queue hashes:

- ``state``: ``status|attempts|token|priority|max_attempts|created|run_at|started|finished|
  worker`` (times in ms since the epoch; started, finished and worker may be empty; fields
  after ``worker`` belong to later layouts and are ignored). ``scripts/lib/state.lua`` is the
  Lua twin of :func:`encode_state` / :func:`decode_state`.
- ``data``: one JSON header line ``[id, name, timeout, backoff, headers, dedup_key, flow]``
  (timeout in seconds or null, backoff ``Backoff.to_list()`` or null, headers an object of
  strings, flow ``[on_parent_failure, [parent ids]]`` for a job with parents; trailing absent
  fields are left out), a newline, then the payload as the serializer wrote it. Built
  by the client and never decoded inside Lua, so a large payload is never re-encoded.
- ``results`` / ``errors``: the result (serializer text) and the last failure
  (``JobFailure.to_json()``).

Decoding never raises for a damaged record: the field takes its default and the problem is
named in ``Job.payload_error`` (a worker then fails the job with that reason).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from redkeep.errors import SerializationError
from redkeep.queue.backoff import Backoff
from redkeep.queue.job import NO_HEADERS, Job, JobFailure, JobStatus, make_job
from redkeep.serialization import JsonSerializer

__all__ = [
    "decode_job",
    "decode_state",
    "encode_data",
    "encode_state",
    "flow_field",
    "job_to_record",
    "split_data",
    "state_group",
]

_STATUS = {s.value: s for s in JobStatus}
_READER = JsonSerializer()


def encode_state(
    status: str,
    attempts: int,
    token: int,
    priority: int,
    max_attempts: int,
    created: int | None,
    run_at: int | None,
    started: int | None = None,
    finished: int | None = None,
    worker: str | None = None,
    group: str | None = None,
) -> str:
    """A state record (times in ms); a job's group follows the worker field as ``|g=<group>``."""

    def ms(v: int | None) -> str:
        return "" if v is None else str(v)

    return (
        f"{status}|{attempts}|{token}|{priority}|{max_attempts}|{ms(created)}|{ms(run_at)}|"
        f"{ms(started)}|{ms(finished)}|{worker or ''}" + (f"|g={group}" if group else "")
    )


def state_group(rec: str) -> str | None:
    """The group a state record names (``|g=<group>`` after the worker field), or None."""
    i = rec.find("|g=")
    if i < 0:
        return None
    return rec[i + 3 :].split("|", 1)[0] or None


def decode_state(rec: str) -> list[str]:
    """The ten fields of a state record (raises ``ValueError`` when it has fewer)."""
    parts = rec.split("|", 9)
    if len(parts) != 10:
        raise ValueError("state record has fewer than 10 fields")
    parts[9] = parts[9].split("|", 1)[0]
    return parts


def encode_data(
    job_id: str,
    name: str,
    timeout: float | None,
    backoff: str,
    payload: str,
    headers: str = "",
    dedup: str = "",
    flow: str = "",
) -> str:
    """The data record; ``backoff`` is ``Backoff.to_list()`` as JSON text or ``""``,
    ``headers`` a JSON object or ``""``, ``dedup`` the deduplication key or ``""``, ``flow``
    ``[on_parent_failure, [parent ids]]`` as JSON text or ``""``."""
    head = orjson.dumps([job_id, name, timeout]).decode()
    if flow:
        key = orjson.dumps(dedup).decode() if dedup else "null"
        head = f"{head[:-1]},{backoff or 'null'},{headers or 'null'},{key},{flow}]"
    elif dedup:
        key = orjson.dumps(dedup).decode()
        head = f"{head[:-1]},{backoff or 'null'},{headers or 'null'},{key}]"
    elif headers:
        head = f"{head[:-1]},{backoff or 'null'},{headers}]"
    elif backoff:
        head = f"{head[:-1]},{backoff}]"
    return f"{head}\n{payload}"


def split_data(data: str) -> tuple[list[Any], str]:
    """The header (``[id, name, timeout, backoff?, headers?]``) and the payload text of a data
    record."""
    head, _, payload = data.partition("\n")
    fields = orjson.loads(head)
    if not isinstance(fields, list) or len(fields) < 3:
        raise ValueError("data header is not [id, name, timeout, ...]")
    return fields, payload


def _ms(value: str) -> float | None:
    return int(value) / 1000.0 if value else None


def _headers(fields: list[Any]) -> Mapping[str, str]:
    """The headers of a data header (ValueError when they are not an object of strings)."""
    if len(fields) < 5 or fields[4] is None:
        return NO_HEADERS
    found = fields[4]
    if not isinstance(found, dict) or not all(type(v) is str for v in found.values()):
        raise ValueError("headers are not an object of strings")
    return found


def _flow(flow: Any) -> dict[str, Any]:
    """The ``depends_on`` and ``on_parent_failure`` of a data header's flow field."""
    mode, parents = flow
    return {"depends_on": tuple(str(p) for p in parents), "on_parent_failure": str(mode)}


def flow_field(mode: str, parents: tuple[str, ...]) -> str:
    """The flow field of a data header (JSON text)."""
    return orjson.dumps([mode, parents]).decode()


def decode_job(
    queue: str,
    job_id: str,
    state: str | None,
    data: str | None,
    result: str | None = None,
    error: str | None = None,
    loads: Callable[[str], Any] = _READER.loads,
    progress: str | None = None,
) -> Job:
    """Build a Job from its stored fields (``None`` where a field is missing)."""
    job = _decode_job(queue, job_id, state, data, result, error, loads)
    if progress:
        # progress is informational: a damaged one is dropped, never the job
        with contextlib.suppress(SerializationError):
            job.__dict__["progress"] = loads(progress)  # a frozen dataclass built here
    return job


def _decode_job(
    queue: str,
    job_id: str,
    state: str | None,
    data: str | None,
    result: str | None,
    error: str | None,
    loads: Callable[[str], Any],
) -> Job:
    try:
        s = decode_state(state or "")
        fields, payload_text = split_data(data or "")
        backoff = fields[3] if len(fields) > 3 else None
        timeout = fields[2]
        return make_job(
            id=job_id,
            name=str(fields[1]),
            queue=queue,
            payload=loads(payload_text) if payload_text else None,
            status=_STATUS[s[0]],
            result=loads(result) if result else None,
            error=JobFailure.from_json(error) if error else None,
            worker_id=s[9] or None,
            payload_error=None,
            priority=int(s[3]),
            attempts=int(s[1]),
            max_attempts=int(s[4]),
            created_at=_ms(s[5]),
            started_at=_ms(s[7]),
            finished_at=_ms(s[8]),
            run_at=_ms(s[6]),
            timeout=None if timeout is None else float(timeout),
            backoff=None if backoff is None else Backoff.from_list(backoff),
            token=int(s[2]),
            headers=_headers(fields),
            dedup_key=str(fields[5]) if len(fields) > 5 and fields[5] is not None else None,
            group=state_group(state) if state else None,
            **(_flow(fields[6]) if len(fields) > 6 else {}),
        )
    except (KeyError, ValueError, TypeError, IndexError, SerializationError):
        return _careful(queue, job_id, state, data, result, error, loads)


def _careful(
    queue: str,
    job_id: str,
    state: str | None,
    data: str | None,
    result: str | None,
    error: str | None,
    loads: Callable[[str], Any],
) -> Job:
    """The slow path of :func:`decode_job`: every damaged field is named."""
    problems: list[str] = []
    s = (state or "").split("|", 9)
    if state is None:
        problems.append("job state record is missing")
    elif len(s) != 10:
        problems.append(f"invalid job state record: {state[:50]!r}")
    s += [""] * (10 - len(s))

    def num(i: int, name: str, convert: Callable[[str], Any], default: Any) -> Any:
        raw = s[i]
        if not raw:
            return default
        try:
            return convert(raw)
        except ValueError:
            problems.append(f"invalid job field {name!r}: {raw[:50]!r}")
            return default

    fields: list[Any] = [job_id, "", None]
    payload_text = ""
    if data is None:
        problems.append("job data record is missing")
    else:
        try:
            fields, payload_text = split_data(data)
        except (ValueError, orjson.JSONDecodeError):
            problems.append(f"invalid job data header: {data.partition(chr(10))[0][:50]!r}")
    payload: Any = None
    if payload_text:
        try:
            payload = loads(payload_text)
        except SerializationError as exc:
            problems.append(f"cannot decode job payload: {exc}")
    decoded_result: Any = None
    if result:
        try:
            decoded_result = loads(result)
        except SerializationError:
            decoded_result = None
    status = _STATUS.get(s[0])
    if status is None and state is not None and len(s) == 10:
        problems.append(f"invalid job field 'status': {s[0][:50]!r}")
    timeout: float | None = None
    try:
        timeout = None if fields[2] is None else float(fields[2])
    except (TypeError, ValueError):
        problems.append(f"invalid job field 'timeout': {str(fields[2])[:50]!r}")
    backoff: Backoff | None = None
    if len(fields) > 3 and fields[3] is not None:
        try:
            backoff = Backoff.from_list(fields[3])
        except (TypeError, ValueError):
            problems.append(f"invalid job field 'backoff': {str(fields[3])[:50]!r}")
    headers: Mapping[str, str] = NO_HEADERS
    try:
        headers = _headers(fields)
    except ValueError:
        problems.append(f"invalid job field 'headers': {str(fields[4])[:50]!r}")
    payload_error = "; ".join(problems) if problems else None
    return make_job(
        id=job_id,
        name=str(fields[1]) if len(fields) > 1 else "",
        queue=queue,
        payload=payload,
        status=status or JobStatus.FAILED,
        result=decoded_result,
        error=JobFailure.from_json(error) if error else None,
        worker_id=s[9].split("|", 1)[0] or None,
        payload_error=payload_error,
        priority=num(3, "priority", int, 0),
        attempts=num(1, "attempts", int, 0),
        max_attempts=num(4, "max_attempts", int, 1),
        created_at=num(5, "created", lambda v: int(v) / 1000.0, None),
        started_at=num(7, "started", lambda v: int(v) / 1000.0, None),
        finished_at=num(8, "finished", lambda v: int(v) / 1000.0, None),
        run_at=num(6, "run_at", lambda v: int(v) / 1000.0, None),
        timeout=timeout,
        backoff=backoff,
        token=num(2, "token", int, 0),
        headers=headers,
        group=state_group(state) if state else None,
    )


def _ms_int(value: float | None) -> int | None:
    return None if value is None else round(value * 1000)


def job_to_record(job: Job, dumps: Callable[[Any], str]) -> tuple[str, str, str, str]:
    """``(state, data, result, error)`` of ``job`` (``""`` for no result / error), for restore
    and the layout-1 upgrade. ``dumps`` encodes payload and result."""
    state = encode_state(
        JobStatus(job.status).value,
        job.attempts,
        job.token,
        job.priority,
        job.max_attempts,
        _ms_int(job.created_at),
        _ms_int(job.run_at),
        _ms_int(job.started_at),
        _ms_int(job.finished_at),
        job.worker_id,
        job.group,
    )
    backoff = orjson.dumps(job.backoff.to_list()).decode() if job.backoff else ""
    headers = orjson.dumps(dict(job.headers)).decode() if job.headers else ""
    flow = ""
    if job.depends_on:
        flow = flow_field(job.on_parent_failure or "fail", job.depends_on)
    data = encode_data(
        job.id, job.name, job.timeout, backoff, dumps(job.payload), headers,
        job.dedup_key or "", flow,
    )  # fmt: skip
    result = dumps(job.result) if job.result is not None else ""
    error = job.error.to_json() if job.error else ""
    return state, data, result, error
