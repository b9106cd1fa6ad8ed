"""``/v1/queues/{queue}/pause|resume`` and ``/v1/queues/{queue}/rate-limit``: flow control of
a queue over HTTP.

State-changing routes (POST, PUT, DELETE) need the API token like every other write; they open
the queue (like an enqueue: a memory backend keeps the state in the open queue). A queue's
paused state is also in ``GET /v1/queues/{queue}/counts``.
"""

from __future__ import annotations

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from typing_extensions import TypedDict  # pydantic reads it on Python 3.11

from redkeep.queue.limits import MAX_RATE_JOBS, MAX_WINDOW, RateLimit
from redkeep.web.errors import json_response
from redkeep.web.routing import QueueName, StrictBody, api_router, errors, services

__all__ = ["QueueState", "RateLimitBody", "RateLimitState", "router"]

router = api_router("/v1/queues", tags=["queues"])


class QueueState(TypedDict):
    queue: str
    paused: bool


class RateLimitView(TypedDict):
    max_jobs: int
    per_seconds: float


class RateLimitState(TypedDict):
    queue: str
    rate_limit: RateLimitView | None


class RateLimitBody(StrictBody):
    max_jobs: int = Field(ge=1, le=MAX_RATE_JOBS, description="Most job starts in one window.")
    per_seconds: float = Field(
        ge=0.001, le=MAX_WINDOW, description="The window in seconds (sliding)."
    )


@router.post("/{queue}/pause", response_model=QueueState, responses=errors(400, 415))
async def queue_pause(request: Request, queue: QueueName) -> Response:
    """Pause the queue: no worker claims its jobs until it is resumed (running jobs finish,
    enqueues still work)."""
    q = services(request).queue(queue)
    await q.pause()
    return json_response({"queue": queue, "paused": await q.is_paused()})


@router.post("/{queue}/resume", response_model=QueueState, responses=errors(400, 415))
async def queue_resume(request: Request, queue: QueueName) -> Response:
    """Resume a paused queue: idle workers claim its jobs at once."""
    q = services(request).queue(queue)
    await q.resume()
    return json_response({"queue": queue, "paused": await q.is_paused()})


def _rate_view(queue: str, limit: RateLimit | None) -> Response:
    view = None if limit is None else {"max_jobs": limit.max_jobs, "per_seconds": limit.per_seconds}
    return json_response({"queue": queue, "rate_limit": view})


@router.get("/{queue}/rate-limit", response_model=RateLimitState, responses=errors(400))
async def rate_limit_get(request: Request, queue: QueueName) -> Response:
    """The queue's rate limit (``null`` when it has none)."""
    return _rate_view(queue, await services(request).queue_view(queue).get_rate_limit())


@router.put("/{queue}/rate-limit", response_model=RateLimitState, responses=errors(400, 415, 422))
async def rate_limit_put(request: Request, queue: QueueName, body: RateLimitBody) -> Response:
    """Set the queue's rate limit: at most ``max_jobs`` job starts in any window of
    ``per_seconds`` seconds, across every worker (replaces an earlier limit)."""
    q = services(request).queue(queue)
    return _rate_view(queue, await q.set_rate_limit(body.max_jobs, body.per_seconds))


@router.delete("/{queue}/rate-limit", response_model=RateLimitState, responses=errors(400))
async def rate_limit_delete(request: Request, queue: QueueName) -> Response:
    """Remove the queue's rate limit."""
    q = services(request).queue(queue)
    return _rate_view(queue, await q.set_rate_limit(None))
