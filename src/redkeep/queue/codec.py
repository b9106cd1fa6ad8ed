"""Conversion between job hashes (as stored in Redis) and :class:`Job`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from redkeep.errors import SerializationError
from redkeep.queue.backoff import Backoff
from redkeep.queue.job import Job, JobFailure, JobStatus, decode_value, make_job

__all__ = ["hash_to_job", "job_to_hash", "pairs_to_dict"]


def pairs_to_dict(flat: Sequence[Any]) -> dict[str, str]:
    """``[f1, v1, f2, v2, ...]`` (an HGETALL reply from a script) as a dict."""
    it = iter(flat)
    return dict(zip(it, it, strict=True))


_STATUS = {s.value: s for s in JobStatus}


def _ms(value: str) -> float:
    return int(value) / 1000.0


_BAD_FIELD = (KeyError, ValueError, TypeError, SerializationError, orjson.JSONDecodeError)


def hash_to_job(queue: str, h: Mapping[str, str]) -> tuple[Job, str | None]:
    """Build a Job from its hash; the second item describes an undecodable record, if any.

    A corrupted field never raises: it takes its default and is named in
    ``Job.payload_error`` (the worker then fails the job with that reason).
    """
    try:
        return _sound_hash_to_job(queue, h), None
    except _BAD_FIELD:
        return _careful_hash_to_job(queue, h)


def _sound_hash_to_job(queue: str, h: Mapping[str, str]) -> Job:
    """The fast path for a record whose fields all decode; raises on the first one that does
    not (the careful path then names every bad field)."""
    get = h.get
    payload = get("payload")
    result = get("result")
    error = get("error")
    created, started = get("created"), get("started")
    finished, run_at = get("finished"), get("run_at")
    timeout, backoff = get("timeout"), get("backoff")
    return make_job(
        id=get("id", ""),
        name=get("name", ""),
        queue=queue,
        payload=orjson.loads(payload) if payload else None,
        status=_STATUS[get("status", "waiting")],
        result=orjson.loads(result) if result else None,
        error=JobFailure.from_json(error) if error else None,
        worker_id=get("worker") or None,
        payload_error=None,
        priority=int(get("priority") or 0),
        attempts=int(get("attempts") or 0),
        max_attempts=int(get("max_attempts") or 1),
        created_at=int(created) / 1000.0 if created else None,
        started_at=int(started) / 1000.0 if started else None,
        finished_at=int(finished) / 1000.0 if finished else None,
        run_at=int(run_at) / 1000.0 if run_at else None,
        timeout=float(timeout) if timeout else None,
        backoff=_backoff(backoff) if backoff else None,
        token=int(get("token") or 0),
    )


def _careful_hash_to_job(queue: str, h: Mapping[str, str]) -> tuple[Job, str | None]:
    problems: list[str] = []

    def field(name: str, convert: Callable[[str], Any], default: Any) -> Any:
        raw = h.get(name)
        if raw is None or raw == "":
            return default
        try:
            return convert(raw)
        except (ValueError, TypeError, SerializationError, orjson.JSONDecodeError):
            problems.append(f"invalid job field {name!r}: {raw[:50]!r}")
            return default

    try:
        payload = decode_value(h.get("payload"))
    except SerializationError as exc:
        payload = None
        problems.append(str(exc))
    result: Any = None
    if "result" in h:
        try:
            result = decode_value(h["result"], "result")
        except SerializationError:
            result = None
    error = h.get("error")
    status = _STATUS.get(h.get("status", "waiting"))
    if status is None:
        problems.append(f"invalid job field 'status': {h.get('status', '')[:50]!r}")
        status = JobStatus.FAILED
    values = {
        "priority": field("priority", int, 0),
        "attempts": field("attempts", int, 0),
        "max_attempts": field("max_attempts", int, 1),
        "created_at": field("created", _ms, None),
        "started_at": field("started", _ms, None),
        "finished_at": field("finished", _ms, None),
        "run_at": field("run_at", _ms, None),
        "timeout": field("timeout", float, None),
        "backoff": field("backoff", _backoff, None),
        "token": field("token", int, 0),
    }
    payload_error = "; ".join(problems) if problems else None
    job = make_job(
        id=h.get("id", ""),
        name=h.get("name", ""),
        queue=queue,
        payload=payload,
        status=status,
        result=result,
        error=JobFailure.from_json(error) if error else None,
        worker_id=h.get("worker") or None,
        payload_error=payload_error,
        **values,
    )
    return job, payload_error


def _backoff(text: str) -> Backoff:
    return Backoff.from_list(orjson.loads(text))


def _ms_text(value: float | None) -> str | None:
    return None if value is None else str(round(value * 1000))


def job_to_hash(job: Job, max_bytes: int) -> dict[str, str]:
    """The hash fields of ``job`` (for restore)."""
    from redkeep.queue.job import encode_value

    h: dict[str, str | None] = {
        "id": job.id,
        "name": job.name,
        "payload": encode_value(job.payload, max_bytes),
        "status": JobStatus(job.status).value,
        "priority": str(job.priority),
        "attempts": str(job.attempts),
        "max_attempts": str(job.max_attempts),
        "created": _ms_text(job.created_at),
        "started": _ms_text(job.started_at),
        "finished": _ms_text(job.finished_at),
        "run_at": _ms_text(job.run_at),
        "result": encode_value(job.result, max_bytes, "result") if job.result is not None else None,
        "error": job.error.to_json() if job.error else None,
        "worker": job.worker_id,
        "timeout": str(job.timeout) if job.timeout is not None else "",
        "backoff": orjson.dumps(job.backoff.to_list()).decode() if job.backoff else "",
        "token": str(job.token),
    }
    return {k: v for k, v in h.items() if v is not None}
