"""``/v1/queues/{queue}/pause|resume``: flow control of a queue over HTTP.

State-changing routes (POST) need the API token like every other write; they open the queue
(like an enqueue: a memory backend keeps the state in the open queue). A queue's paused state is
also in ``GET /v1/queues/{queue}/counts``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from typing_extensions import TypedDict  # pydantic reads it on Python 3.11

from redkeep.web.errors import json_response
from redkeep.web.routing import QueueName, api_router, errors, services

__all__ = ["QueueState", "router"]

router = api_router("/v1/queues", tags=["queues"])


class QueueState(TypedDict):
    queue: str
    paused: bool


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
