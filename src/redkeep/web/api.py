"""The JSON API under ``/v1``: named caches and job queues.

Every endpoint validates its input (path names, query parameters, JSON bodies with pydantic)
and answers a 4xx naming the problem; backend outages become 503 (see
:mod:`redkeep.web.errors`). The OpenAPI description is in :mod:`redkeep.web.openapi`.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from redkeep.web.errors import ApiError, json_response, map_exception

if TYPE_CHECKING:
    from redkeep.services import Services

__all__ = ["JOB_STATUSES", "NAME_PATTERN", "job_to_dict", "routes"]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
JOB_STATUSES = ("outbox", "waiting", "delayed", "active", "completed", "failed", "cancelled")
MAX_LIST_LIMIT = 500
_NAME = re.compile(NAME_PATTERN)
_JOB_ID = re.compile(JOB_ID_PATTERN)
_MISSING = object()

Endpoint = Callable[[Request], Awaitable[Response]]


class _KeyConvertor(Convertor[str]):
    """Any non-empty rest of the path, newlines included (Starlette's ``path`` stops at them).

    Cache keys may hold any character; clients percent-encode them (``/`` as ``%2F``)."""

    regex = "(?s:.+)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("cachekey", _KeyConvertor())


class CachePut(BaseModel):
    """Body of ``PUT /v1/caches/{name}/keys/{key}``."""

    model_config = ConfigDict(extra="forbid")
    value: Any = Field(description="Any JSON value.")
    ttl: float | None = Field(None, gt=0, le=10 * 365 * 86400, description="Seconds to live.")


class EnqueueRequest(BaseModel):
    """Body of ``POST /v1/queues/{queue}/jobs``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, description="Handler name.")
    payload: Any = None
    job_id: str | None = Field(None, pattern=JOB_ID_PATTERN)
    priority: int = Field(0, ge=-1000, le=1000, description="Higher runs first.")
    delay: float | None = Field(None, ge=0, le=365 * 86400)
    max_attempts: int | None = Field(None, ge=1, le=1000)
    timeout: float | None = Field(None, gt=0, le=86400)


def _api(fn: Endpoint) -> Endpoint:
    """Turn every exception of an endpoint into a JSON error response."""

    @functools.wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except Exception as exc:
            return map_exception(exc)

    return wrapper


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _name(request: Request, param: str) -> str:
    value = str(request.path_params[param])
    if not _NAME.match(value):
        raise ApiError(
            400,
            "invalid_name",
            f"{param} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter "
            "or digit",
            field=param,
        )
    return value


def _job_id(request: Request) -> str:
    value = str(request.path_params["job_id"])
    if not _JOB_ID.match(value):
        raise ApiError(404, "job_not_found", "no job with that id", field="job_id")
    return value


async def _body(request: Request, model: type[BaseModel]) -> Any:
    limit = _services(request).settings.max_payload_bytes + 64 * 1024
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ApiError(413, "payload_too_large", f"request body is over {limit} bytes")
    if not raw.strip():
        raise ApiError(400, "invalid_json", "request body must be a JSON object")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or None
        msg = str(err.get("msg", "invalid value"))
        raise ApiError(422, "validation_error", f"{field}: {msg}", field=field) from None


def _int_query(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_query", f"{name} must be an integer", field=name) from None
    if not lo <= value <= hi:
        raise ApiError(400, "invalid_query", f"{name} must be in [{lo}, {hi}]", field=name)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, BaseModel):
        return _plain(value.model_dump())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def job_to_dict(job: Any) -> dict[str, Any]:
    """A job as a JSON-ready dict (enums as values, times as ISO 8601 or epoch floats)."""
    data = _plain(job)
    if not isinstance(data, dict):
        data = {k: _plain(v) for k, v in vars(job).items() if not k.startswith("_")}
    data.pop("token", None)  # fencing tokens are internal
    return data


# -- caches --------------------------------------------------------------------------------------
@_api
async def cache_get(request: Request) -> Response:
    """GET a cache entry: 200 with value and remaining ttl, or 404."""
    cache = _services(request).cache(_name(request, "name"))
    key = str(request.path_params["key"])
    value = await cache.get(key, _MISSING)
    if value is _MISSING:
        raise ApiError(404, "key_not_found", "no entry with that key", field="key")
    ttl = await cache.ttl(key)
    return json_response(
        {"key": key, "value": value, "ttl": None if ttl is None else round(ttl, 3)}
    )


@_api
async def cache_put(request: Request) -> Response:
    """PUT a cache entry."""
    cache = _services(request).cache(_name(request, "name"))
    key = str(request.path_params["key"])
    body: CachePut = await _body(request, CachePut)
    await cache.set(key, body.value, ttl=body.ttl)
    return json_response({"key": key, "stored": True})


@_api
async def cache_delete(request: Request) -> Response:
    """DELETE a cache entry; ``deleted`` says whether it existed."""
    cache = _services(request).cache(_name(request, "name"))
    key = str(request.path_params["key"])
    return json_response({"key": key, "deleted": bool(await cache.delete(key))})


@_api
async def cache_stats(request: Request) -> Response:
    """Counters of a named cache."""
    name = _name(request, "name")
    stats = _services(request).cache(name).stats()
    return json_response({"cache": name, "stats": _plain(stats)})


# -- queues --------------------------------------------------------------------------------------
@_api
async def queue_counts(request: Request) -> Response:
    """Jobs per status."""
    name = _name(request, "queue")
    counts = await _services(request).queue(name).counts()
    return json_response({"queue": name, "counts": _plain(counts)})


@_api
async def job_enqueue(request: Request) -> Response:
    """Enqueue a job; 201 with the job."""
    queue = _services(request).queue(_name(request, "queue"))
    body: EnqueueRequest = await _body(request, EnqueueRequest)
    options: dict[str, Any] = {"job_id": body.job_id, "priority": body.priority}
    if body.delay:
        options["delay"] = body.delay
    if body.max_attempts is not None:
        options["max_attempts"] = body.max_attempts
    if body.timeout is not None:
        options["timeout"] = body.timeout
    job = await queue.enqueue(body.name, body.payload, **options)
    return json_response(job_to_dict(job), 201)


@_api
async def job_list(request: Request) -> Response:
    """Jobs with one status, oldest first, paged by offset and limit."""
    name = _name(request, "queue")
    status = request.query_params.get("status", "waiting")
    if status not in JOB_STATUSES:
        raise ApiError(
            400, "invalid_query", f"status must be one of {', '.join(JOB_STATUSES)}", field="status"
        )
    offset = _int_query(request, "offset", 0, 0, 1_000_000)
    limit = _int_query(request, "limit", 50, 1, MAX_LIST_LIMIT)
    jobs = await _services(request).queue(name).list_jobs(status, offset, limit)
    items = [job_to_dict(j) for j in jobs]
    return json_response(
        {"queue": name, "status": status, "offset": offset, "limit": limit, "jobs": items}
    )


@_api
async def job_get(request: Request) -> Response:
    """One job, or 404."""
    queue = _services(request).queue(_name(request, "queue"))
    job = await queue.get_job(_job_id(request))
    if job is None:
        raise ApiError(404, "job_not_found", "no job with that id", field="job_id")
    return json_response(job_to_dict(job))


@_api
async def job_cancel(request: Request) -> Response:
    """Cancel a waiting, delayed or active job; ``cancelled`` says whether it was."""
    queue = _services(request).queue(_name(request, "queue"))
    job_id = _job_id(request)
    if await queue.get_job(job_id) is None:
        raise ApiError(404, "job_not_found", "no job with that id", field="job_id")
    return json_response({"id": job_id, "cancelled": bool(await queue.cancel(job_id))})


@_api
async def job_retry(request: Request) -> Response:
    """Send a failed job back to waiting (409 when it is not failed)."""
    queue = _services(request).queue(_name(request, "queue"))
    job_id = _job_id(request)
    if await queue.get_job(job_id) is None:
        raise ApiError(404, "job_not_found", "no job with that id", field="job_id")
    result = await queue.retry(job_id)
    if result is False:
        raise ApiError(409, "job_conflict", "only failed jobs can be retried")
    job = await queue.get_job(job_id)
    return json_response(job_to_dict(job) if job is not None else {"id": job_id})


routes = [
    Route("/v1/caches/{name}/stats", cache_stats, methods=["GET"]),
    Route("/v1/caches/{name}/keys/{key:cachekey}", cache_get, methods=["GET"]),
    Route("/v1/caches/{name}/keys/{key:cachekey}", cache_put, methods=["PUT"]),
    Route("/v1/caches/{name}/keys/{key:cachekey}", cache_delete, methods=["DELETE"]),
    Route("/v1/queues/{queue}/counts", queue_counts, methods=["GET"]),
    Route("/v1/queues/{queue}/jobs", job_enqueue, methods=["POST"]),
    Route("/v1/queues/{queue}/jobs", job_list, methods=["GET"]),
    Route("/v1/queues/{queue}/jobs/{job_id}", job_get, methods=["GET"]),
    Route("/v1/queues/{queue}/jobs/{job_id}/cancel", job_cancel, methods=["POST"]),
    Route("/v1/queues/{queue}/jobs/{job_id}/retry", job_retry, methods=["POST"]),
]
