"""Enqueue validation: a :class:`~redkeep.queue.job.JobSpec` checked and encoded into a
:class:`_Prepared` job, what the backends' ``_enqueue`` hooks write.

:func:`prepare` is :meth:`JobQueue._prepare <redkeep.queue.base.JobQueue._prepare>` (the
function itself, bound as the method: no extra call layer on the enqueue path); the common case
of :meth:`~redkeep.queue.base.JobQueue.enqueue` (the queue's defaults) builds its
:class:`_Prepared` inline instead.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from redkeep.errors import InvalidJob
from redkeep.names import NAME_RULE, is_valid_name
from redkeep.queue.backoff import Backoff
from redkeep.queue.flows import flow_options
from redkeep.queue.job import (
    MAX_DEDUP_KEY,
    MAX_JOB_ID,
    MAX_NAME,
    MAX_PRIORITY,
    JobSpec,
    check_headers,
    encode_value,
    new_job_id,
)

if TYPE_CHECKING:
    from redkeep.queue.base import JobQueue

__all__ = ["prepare"]


def prepare(queue: JobQueue, spec: JobSpec) -> _Prepared:
    """``spec`` validated (:class:`~redkeep.errors.InvalidJob` naming the field) and encoded
    for ``queue``, its job id chosen."""
    # Printable only: these end up in log lines, where a newline would forge another one.
    name = spec.name
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or not name.isprintable():
        raise InvalidJob(
            f"job name must be a str of 1-{MAX_NAME} printable characters (no newline or "
            "other control character)"
        )
    job_id = spec.job_id
    if job_id is not None and (
        not isinstance(job_id, str) or not 0 < len(job_id) <= MAX_JOB_ID or not job_id.isprintable()
    ):
        raise InvalidJob(
            f"job_id must be a str of 1-{MAX_JOB_ID} printable characters (no newline or "
            "other control character)"
        )
    prio = spec.priority
    if not isinstance(prio, int) or isinstance(prio, bool) or abs(prio) > MAX_PRIORITY:
        raise InvalidJob(f"priority must be an int in [-{MAX_PRIORITY}, {MAX_PRIORITY}]")
    attempts = queue.default_max_attempts if spec.max_attempts is None else spec.max_attempts
    if not isinstance(attempts, int) or attempts < 1:
        raise InvalidJob("max_attempts must be an int >= 1")
    if spec.delay is not None and spec.run_at is not None:
        raise InvalidJob("give delay or run_at, not both")
    delay_ms = 0
    if spec.delay is not None:
        if not spec.delay >= 0:
            raise InvalidJob("delay must be >= 0 seconds")
        delay_ms = int(spec.delay * 1000)
    run_at_ms = 0
    if spec.run_at is not None:
        if not spec.run_at >= 0:
            raise InvalidJob("run_at must be seconds since the epoch")
        # run_at is an absolute wall-clock time given by the caller; the server clock
        # decides whether it is due.
        run_at_ms = int(spec.run_at * 1000)
    if spec.timeout is not None and not spec.timeout > 0:
        raise InvalidJob("timeout must be > 0 seconds")
    backoff = spec.backoff
    if isinstance(backoff, int | float) and not isinstance(backoff, bool):
        if backoff < 0:
            raise InvalidJob("backoff must be >= 0 seconds")
        backoff = Backoff(float(backoff), float(backoff), "fixed", jitter=False)
    elif backoff is not None and not isinstance(backoff, Backoff):
        raise InvalidJob("backoff must be a Backoff or a number of seconds")
    headers = ""
    if spec.headers:
        headers = orjson.dumps(check_headers(spec.headers)).decode()
    dedup, ttl_ms, debounce_ms = _dedup_options(spec)
    group = spec.group
    if group is not None and not is_valid_name(group):
        raise InvalidJob(f"group {str(group)[:40]!r} must be {NAME_RULE}")
    if spec.queue is not None and spec.queue != queue.name:
        raise InvalidJob(
            f"JobSpec.queue {spec.queue!r} is not this queue ({queue.name!r}): only chain() and "
            "group() write jobs to other queues"
        )
    parents, foreign, mode = flow_options(spec, queue.name)
    if parents and dedup:
        raise InvalidJob("dedup_key cannot be combined with depends_on")
    if job_id is not None and job_id in parents:
        raise InvalidJob(f"job {job_id!r} cannot depend on itself")
    if parents and group is not None:
        raise InvalidJob("group cannot be combined with depends_on")
    if debounce_ms:
        delay_ms = debounce_ms
    payload = encode_value(spec.payload, queue.max_payload_bytes)
    return _Prepared(
        id=job_id or new_job_id(),
        name=spec.name,
        payload=payload,
        priority=prio,
        delay_ms=delay_ms,
        run_at_ms=run_at_ms,
        max_attempts=attempts,
        backoff=orjson.dumps(backoff.to_list()).decode() if backoff else "",
        timeout=spec.timeout,
        value=spec.payload,
        headers=headers,
        dedup=dedup,
        dedup_ttl_ms=ttl_ms,
        debounce_ms=debounce_ms,
        group=group or "",
        parents=parents,
        on_parent_failure=mode,
        foreign=foreign,
    )


class _Prepared(NamedTuple):
    """A validated, encoded job (a tuple: cheap to build on the enqueue hot path)."""

    id: str
    name: str
    payload: str
    priority: int
    delay_ms: int
    run_at_ms: int
    max_attempts: int
    backoff: str
    timeout: float | None
    value: Any
    headers: str = ""
    """The job's headers as a JSON object, or ``""`` for none."""
    dedup: str = ""
    """The deduplication key, or ``""`` for none."""
    dedup_ttl_ms: int = 0
    debounce_ms: int = 0
    group: str = ""
    """The job's group, or ``""`` for none."""
    parents: tuple[str, ...] = ()
    """Ids of the jobs it depends on (``depends_on``), or ``()``; a parent of another queue is
    named ``<queue>/<id>`` (its proxy in this queue, see :mod:`redkeep.queue.flows`)."""
    on_parent_failure: str = ""
    foreign: tuple[tuple[str, str], ...] = ()
    """The parents of other queues, as (queue, id)."""


def _seconds(value: Any, field: str) -> int:
    """``value`` seconds as whole ms (> 0), or InvalidJob naming ``field``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not value > 0
        or value > 10**9
    ):
        raise InvalidJob(f"{field} must be a number of seconds > 0, got {value!r}")
    return max(1, int(value * 1000))


def _dedup_options(spec: JobSpec) -> tuple[str, int, int]:
    """The checked (dedup key, dedup_ttl ms, debounce ms) of ``spec``."""
    key = spec.dedup_key
    if key is None:
        for field in ("dedup_ttl", "debounce"):
            if getattr(spec, field) is not None:
                raise InvalidJob(f"{field} needs a dedup_key")
        return "", 0, 0
    if not isinstance(key, str) or not 0 < len(key) <= MAX_DEDUP_KEY or not key.isprintable():
        raise InvalidJob(
            f"dedup_key must be a str of 1-{MAX_DEDUP_KEY} printable characters (no newline or "
            "other control character)"
        )
    ttl_ms = 0 if spec.dedup_ttl is None else _seconds(spec.dedup_ttl, "dedup_ttl")
    if spec.debounce is None:
        return key, ttl_ms, 0
    debounce_ms = _seconds(spec.debounce, "debounce")
    if spec.delay is not None or spec.run_at is not None:
        raise InvalidJob("debounce sets the start (now + debounce): give no delay or run_at")
    if spec.dedup_ttl is not None:
        raise InvalidJob("dedup_ttl does not apply with debounce (give one of them)")
    return key, 0, debounce_ms
