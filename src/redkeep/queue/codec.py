"""Conversion between job hashes (as stored in Redis) and :class:`Job`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from redkeep.errors import SerializationError
from redkeep.queue.backoff import Backoff
from redkeep.queue.base import Job, JobFailure, JobStatus, decode_value, make_job

__all__ = ["hash_to_job", "job_to_hash", "pairs_to_dict"]


def pairs_to_dict(flat: Sequence[Any]) -> dict[str, str]:
    """``[f1, v1, f2, v2, ...]`` (an HGETALL reply from a script) as a dict."""
    it = iter(flat)
    return dict(zip(it, it, strict=True))


_STATUS = {s.value: s for s in JobStatus}


def _ms(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    return int(value) / 1000.0


def hash_to_job(queue: str, h: Mapping[str, str]) -> tuple[Job, str | None]:
    """Build a Job from its hash; the second item is a payload decode error, if any."""
    payload_error: str | None = None
    try:
        payload = decode_value(h.get("payload"))
    except SerializationError as exc:
        payload, payload_error = None, str(exc)
    result: Any = None
    if "result" in h:
        try:
            result = decode_value(h["result"], "result")
        except SerializationError:
            result = None
    error = h.get("error")
    backoff = h.get("backoff")
    timeout = h.get("timeout")
    worker = h.get("worker")
    status = _STATUS.get(h.get("status", "waiting"), JobStatus.FAILED)
    job = make_job(
        id=h["id"],
        name=h.get("name", ""),
        queue=queue,
        payload=payload,
        status=status,
        priority=int(h.get("priority", 0)),
        attempts=int(h.get("attempts", 0)),
        max_attempts=int(h.get("max_attempts", 1)),
        created_at=_ms(h.get("created")),
        started_at=_ms(h.get("started")),
        finished_at=_ms(h.get("finished")),
        run_at=_ms(h.get("run_at")),
        result=result,
        error=JobFailure.from_json(error) if error else None,
        worker_id=worker or None,
        timeout=float(timeout) if timeout else None,
        backoff=Backoff.from_list(orjson.loads(backoff)) if backoff else None,
        token=int(h.get("token", 0)),
        payload_error=payload_error,
    )
    return job, payload_error


def _ms_text(value: float | None) -> str | None:
    return None if value is None else str(round(value * 1000))


def job_to_hash(job: Job, max_bytes: int) -> dict[str, str]:
    """The hash fields of ``job`` (for restore)."""
    from redkeep.queue.base import encode_value

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
