"""``GET /v1/workers``: the workers registered on the service's backend (see
:mod:`redkeep.queue.workers`): on Redis every worker under the key prefix, on memory the
workers running inside this service."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from typing_extensions import TypedDict  # pydantic reads it on Python 3.11

from redkeep.queue.workers import WorkerView
from redkeep.web.errors import json_response
from redkeep.web.routing import api_router, services

__all__ = ["WorkerList", "list_workers", "router"]

router = api_router("/v1/workers", tags=["workers"])


class WorkerList(TypedDict):
    """Live workers, by id (a worker is listed until its heartbeats stop for a while)."""

    workers: list[WorkerView]


@router.get("", response_model=WorkerList)
async def list_workers(request: Request) -> Response:
    """Workers whose heartbeats are current: id, host, pid, queues, times and job counts."""
    return json_response({"workers": await services(request).workers().list()})
