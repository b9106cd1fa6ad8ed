"""How routes are added to the HTTP service: one pattern for every group of routes.

Each group of routes is a module of :mod:`redkeep.web` listed in
:data:`redkeep.web.app.ROUTERS`. The module builds ``router = api_router(...)`` and declares its
request and response models next to its endpoints. FastAPI validates requests with those models
and generates ``/openapi.json`` from the same declarations, so schema and validation cannot
drift. A new group, say schedules::

    # src/redkeep/web/schedules.py
    router = api_router("/v1/queues/{queue}/schedules", tags=["schedules"])

    class ScheduleRequest(StrictBody):           # strict types, unknown fields refused
        cron: str = Field(description="Cron expression, e.g. '*/5 * * * *'.")

    class ScheduleView(TypedDict):               # the response shape, for the schema
        id: str
        cron: str

    @router.post("", status_code=201, response_model=ScheduleView, responses=errors(409, 413))
    async def create(request: Request, queue: QueueName, body: ScheduleRequest) -> Response:
        schedule = await services(request).queue(queue).schedule(body.cron)
        return json_response(view_of(schedule), 201)

and append ``"redkeep.web.schedules"`` to ``ROUTERS``. The rules that come with it:

- Request bodies subclass :class:`StrictBody`; path names use :data:`CacheName`,
  :data:`QueueName` and :data:`JobId` (the one naming rule of :mod:`redkeep.names`).
- Endpoints return :func:`~redkeep.web.errors.json_response` of the declared response model and
  raise redkeep exceptions or :class:`~redkeep.web.errors.ApiError`; :func:`errors` lists the
  error statuses in the schema (401 and 503 are on every ``/v1`` route already).
- Reads use :meth:`Services.cache_view` / :meth:`Services.queue_view` so that unknown names
  never take one of the service's named slots; only writes open a cache or queue.
- Routes that change state use POST, PUT or DELETE: the request guard
  (:mod:`redkeep.web.security`) refuses them cross-site and with bodies that are not JSON.
  Every route but ``/health/*`` needs the API token when one is set (the dashboard's ``/ui``
  checks its own session instead: see :mod:`redkeep.web.ui`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from redkeep.names import NAME_PATTERN, NAME_RULE, check_name
from redkeep.queue.job import MAX_JOB_ID
from redkeep.web.errors import ErrorBody, map_exception

if TYPE_CHECKING:
    from redkeep.services import Services

__all__ = [
    "JOB_ID_PATTERN",
    "CacheName",
    "JobId",
    "QueueName",
    "StrictBody",
    "api_router",
    "errors",
    "services",
]

JOB_ID_PATTERN = f"^[A-Za-z0-9][A-Za-z0-9_.:-]{{0,{MAX_JOB_ID - 1}}}$"
"""Job ids reachable over HTTP (one path segment); the Python API accepts any str id."""


def _cache_name(value: str) -> str:
    return check_name(value, "cache name")


def _queue_name(value: str) -> str:
    return check_name(value, "queue name")


CacheName = Annotated[
    str,
    Path(description=f"Cache name: {NAME_RULE}.", json_schema_extra={"pattern": NAME_PATTERN}),
    AfterValidator(_cache_name),
]
QueueName = Annotated[
    str,
    Path(description=f"Queue name: {NAME_RULE}.", json_schema_extra={"pattern": NAME_PATTERN}),
    AfterValidator(_queue_name),
]
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="Job id.")]


class StrictBody(BaseModel):
    """Base of every request body: strict types (no ``"5"`` for 5, no ``true`` for 1, no
    float for an int) and unknown fields refused."""

    model_config = ConfigDict(strict=True, extra="forbid")


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry of a route for these error statuses (the shared error body)."""
    return {status: {"model": ErrorBody, "description": "An error."} for status in statuses}


class _Route(APIRoute):
    """Every exception of an endpoint, request validation included, becomes the JSON error
    body of :mod:`redkeep.web.errors` (never a traceback)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return map_exception(exc)

        return guarded


def api_router(
    prefix: str = "", *, tags: Sequence[str | Enum] | None = None, public: bool = False
) -> APIRouter:
    """A router following the pattern of this module. ``public`` routes need no token (the
    probes); the others document 401 and 503 and the bearer security requirement."""
    return APIRouter(
        prefix=prefix,
        tags=list(tags or []),
        route_class=_Route,
        responses={} if public else errors(401, 503),
    )


def services(request: Request) -> Services:
    """The :class:`~redkeep.services.Services` of the app serving ``request``."""
    svc: Services = request.app.state.services
    return svc
