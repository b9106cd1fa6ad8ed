"""Example job handlers, run by ``redkeep serve`` out of the box (``redkeep.examples:handlers``).

* ``echo``: returns its payload as the job's result.
* ``sleep``: waits ``payload["seconds"]`` (default 1, at most 60) and returns ``{"slept": s}``.
* ``fail``: raises ``RuntimeError(payload["message"])``, so the job is retried, then failed.

``redkeep serve`` runs them on the ``examples`` queue.

Try them (on the memory backends, or with ``REDKEEP_REDIS_URL`` set)::

    make serve
    curl -s -X POST localhost:8000/v1/queues/examples/jobs \\
         -H 'content-type: application/json' -d '{"name": "echo", "payload": {"hello": "world"}}'
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["MAX_SLEEP", "echo", "fail", "handlers", "sleep"]

MAX_SLEEP = 60.0


def _payload(job: Any) -> Any:
    return getattr(job, "payload", None)


async def echo(job: Any) -> Any:
    """Return the job's payload."""
    return _payload(job)


async def sleep(job: Any) -> dict[str, float]:
    """Sleep ``payload["seconds"]`` (a number payload works too), bounded by MAX_SLEEP."""
    payload = _payload(job)
    raw = payload.get("seconds", 1.0) if isinstance(payload, dict) else payload
    try:
        seconds = float(raw if raw is not None else 1.0)
    except (TypeError, ValueError):
        raise ValueError(f"sleep: seconds must be a number, got {raw!r}") from None
    if not 0 <= seconds <= MAX_SLEEP:
        raise ValueError(f"sleep: seconds must be between 0 and {MAX_SLEEP}, got {seconds}")
    await asyncio.sleep(seconds)
    return {"slept": seconds}


async def fail(job: Any) -> None:
    """Always raise, with ``payload["message"]`` as the error message."""
    payload = _payload(job)
    message = payload.get("message") if isinstance(payload, dict) else None
    raise RuntimeError(str(message or "the example 'fail' handler always fails"))


handlers: Mapping[str, Callable[[Any], Awaitable[Any]]] = {
    "echo": echo,
    "sleep": sleep,
    "fail": fail,
}
"""The example handlers by name (what ``redkeep serve`` runs by default)."""
