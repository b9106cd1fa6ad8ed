"""The enqueue outbox's records (:mod:`redkeep.queue.outbox`): its stats snapshot, and held jobs
(:class:`~redkeep.queue.outbox_store.NewJob`) to and from the queue's jobs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from redkeep.errors import SerializationError
from redkeep.queue.backoff import Backoff
from redkeep.queue.job import NO_HEADERS, Job, JobStatus, decode_value, make_job
from redkeep.queue.outbox_store import NewJob, QueueDepth
from redkeep.queue.prepare import _Prepared

__all__ = ["OutboxStats", "as_job", "held_job", "relayed_job"]


@dataclass(frozen=True)
class OutboxStats:
    """A snapshot of the outbox for metrics and health (counters since this process started)."""

    path: str
    queues: dict[str, QueueDepth]
    """Held jobs per queue, from the file (every process's)."""
    max_jobs: int
    max_bytes: int
    held: dict[str, int] = field(default_factory=dict)
    """Jobs this process wrote to the outbox, per queue."""
    relayed: dict[str, int] = field(default_factory=dict)
    """Jobs this process relayed to Redis, per queue."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Jobs refused because the outbox was full, per queue."""
    relay_errors: int = 0
    full: bool = False
    """The last hold was refused for lack of room and nothing has left the outbox since."""
    last_error: str | None = None
    at: float = field(default_factory=time.time)

    @property
    def jobs(self) -> int:
        """Held jobs, all queues."""
        return sum(d.jobs for d in self.queues.values())

    @property
    def bytes(self) -> int:
        """Bytes held, all queues."""
        return sum(d.bytes for d in self.queues.values())

    def oldest_age(self, queue: str | None = None) -> float | None:
        """Seconds since the oldest held job (of ``queue``, or of all) was enqueued."""
        found = [
            d.oldest_ms
            for name, d in self.queues.items()
            if d.oldest_ms is not None and (queue is None or name == queue)
        ]
        return max(0.0, self.at - min(found) / 1000.0) if found else None


def held_job(p: _Prepared, now_ms: int) -> NewJob:
    # A relative delay counts from the enqueue, not from the relay (local clock).
    run_at = max(p.run_at_ms, now_ms + p.delay_ms) if p.delay_ms or p.run_at_ms else 0
    return NewJob(
        p.id, p.name, p.payload, p.priority, run_at, p.max_attempts, p.backoff, p.timeout, now_ms,
        p.headers,
    )  # fmt: skip


def relayed_job(j: NewJob) -> _Prepared:
    # The id may exist already (an earlier relay, or an enqueue that reached Redis before its
    # reply was lost): every enqueue checks, and then keeps the existing job.
    return _Prepared(
        j.id, j.name, j.payload, j.priority, 0, j.run_at_ms, j.max_attempts, j.backoff,
        j.timeout, None, j.headers,
    )  # fmt: skip


_DECODE: Any = object()


def as_job(queue: str, j: NewJob, payload: Any = _DECODE) -> Job:
    """A held job as a :class:`Job` (status ``outbox``); ``payload`` decoded unless given."""
    problem: str | None = None
    if payload is _DECODE:
        try:
            payload = decode_value(j.payload)
        except SerializationError as exc:
            payload, problem = None, str(exc)
    return make_job(
        id=j.id,
        name=j.name,
        queue=queue,
        payload=payload,
        payload_error=problem,
        status=JobStatus.OUTBOX,
        priority=j.priority,
        max_attempts=j.max_attempts,
        created_at=j.created_ms / 1000.0,
        run_at=(j.run_at_ms or j.created_ms) / 1000.0,
        timeout=j.timeout,
        backoff=backoff_from(j.backoff),
        headers=orjson.loads(j.headers) if j.headers else NO_HEADERS,
    )


def backoff_from(text: str) -> Backoff | None:
    return Backoff.from_list(orjson.loads(text)) if text else None
