"""``/v1/queues/{queue}/pause|resume``, ``/v1/queues/{queue}/rate-limit`` and
``/v1/queues/{queue}/group-limit``: flow control of a queue over HTTP.

State-changing routes (POST, PUT, DELETE) need the API token like every other write; they open
the queue (like an enqueue: a memory backend keeps the state in the open queue). A queue's
paused state is also in ``GET /v1/queues/{queue}/counts``.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator
from starlette.requests import Request
from starlette.responses import Response
from typing_extensions import TypedDict  # pydantic reads it on Python 3.11

from redkeep.queue.limits import (
    MAX_GROUP_CONCURRENCY,
    MAX_RATE_JOBS,
    MAX_WINDOW,
    GroupLimit,
    RateLimit,
)
from redkeep.web.errors import json_response
from redkeep.web.routing import QueueName, StrictBody, api_router, errors, services

__all__ = [
    "GroupLimitBody",
    "GroupLimitState",
    "GroupLimitView",
    "QueueState",
    "RateLimitBody",
    "RateLimitState",
    "RateLimitView",
    "group_limit_view",
    "rate_limit_view",
    "router",
]

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


class GroupLimitView(TypedDict):
    concurrency: int | None
    max_jobs: int | None
    per_seconds: float | None


class GroupLimitState(TypedDict):
    queue: str
    group_limit: GroupLimitView | None


class GroupLimitBody(StrictBody):
    concurrency: int | None = Field(
        None, ge=1, le=MAX_GROUP_CONCURRENCY, description="Most active jobs of one group."
    )
    max_jobs: int | None = Field(
        None, ge=1, le=MAX_RATE_JOBS, description="Most job starts of one group per window."
    )
    per_seconds: float | None = Field(
        None,
        ge=0.001,
        le=MAX_WINDOW,
        validate_default=True,
        description="The window of max_jobs, in seconds.",
    )

    @field_validator("per_seconds")
    @classmethod
    def _complete(cls, value: float | None, info: ValidationInfo) -> float | None:
        # per_seconds is validated last, with its default too: the whole body is checked here
        if (info.data.get("max_jobs") is None) != (value is None):
            raise ValueError("max_jobs and per_seconds go together")
        if value is None and info.data.get("concurrency") is None:
            raise ValueError("give concurrency or max_jobs (DELETE removes the limit)")
        return value


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


def rate_limit_view(limit: RateLimit | None) -> RateLimitView | None:
    """The JSON form of a rate limit."""
    if limit is None:
        return None
    return {"max_jobs": limit.max_jobs, "per_seconds": limit.per_seconds}


def group_limit_view(limit: GroupLimit | None) -> GroupLimitView | None:
    """The JSON form of a group limit."""
    if limit is None:
        return None
    r = limit.rate
    return {"concurrency": limit.concurrency, "max_jobs": r.max_jobs if r else None,
            "per_seconds": r.per_seconds if r else None}  # fmt: skip


def _rate_view(queue: str, limit: RateLimit | None) -> Response:
    return json_response({"queue": queue, "rate_limit": rate_limit_view(limit)})


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


def _group_view(queue: str, limit: GroupLimit | None) -> Response:
    return json_response({"queue": queue, "group_limit": group_limit_view(limit)})


@router.get("/{queue}/group-limit", response_model=GroupLimitState, responses=errors(400))
async def group_limit_get(request: Request, queue: QueueName) -> Response:
    """The limit every group of the queue gets (``null`` when there is none)."""
    return _group_view(queue, await services(request).queue_view(queue).get_group_limit())


@router.put("/{queue}/group-limit", response_model=GroupLimitState, responses=errors(400, 415, 422))
async def group_limit_put(request: Request, queue: QueueName, body: GroupLimitBody) -> Response:
    """Set the limit of every group of the queue: at most ``concurrency`` active jobs of one
    group, at most ``max_jobs`` starts of one group per ``per_seconds`` (replaces an earlier
    limit; give at least one)."""
    q = services(request).queue(queue)
    limit = await q.set_group_limit(body.concurrency, body.max_jobs, body.per_seconds)
    return _group_view(queue, limit)


@router.delete("/{queue}/group-limit", response_model=GroupLimitState, responses=errors(400))
async def group_limit_delete(request: Request, queue: QueueName) -> Response:
    """Remove the group limit (groups are still served round-robin)."""
    return _group_view(queue, await services(request).queue(queue).set_group_limit())
