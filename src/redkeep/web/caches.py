"""``/v1/caches``: read and write entries of named caches, and their counters.

Reads and deletes of a cache this service has not opened do not open it (see
:meth:`~redkeep.services.Services.cache_view`); only ``PUT`` does.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import Field
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from typing_extensions import TypedDict  # pydantic reads it on Python 3.11

from redkeep.cache.base import MISSING, CacheStats
from redkeep.web.errors import ApiError, json_response
from redkeep.web.routing import CacheName, StrictBody, api_router, errors, services

__all__ = ["CachePut", "router"]

router = api_router("/v1/caches", tags=["caches"])


class _KeyConvertor(Convertor[str]):
    """Any non-empty rest of the path, newlines included (Starlette's ``path`` stops at them).

    Cache keys may hold any character; clients percent-encode them (``/`` as ``%2F``)."""

    regex = "(?s:.+)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("cachekey", _KeyConvertor())

CacheKey = Annotated[
    str,
    Path(
        min_length=1,
        description="Cache key: any text up to REDKEEP_CACHE_MAX_KEY_LENGTH characters, "
        "percent-encoded in the path ('/' as %2F).",
    ),
]


class CachePut(StrictBody):
    """Body of ``PUT /v1/caches/{name}/keys/{key}``."""

    value: Any = Field(description="Any JSON value (required; null is a value).")
    ttl: float | None = Field(
        None, gt=0, le=10 * 365 * 86400, description="Seconds to live; default: the cache's."
    )


class CacheEntry(TypedDict):
    """A cache entry and its remaining time to live (null: no expiry)."""

    key: str
    value: Any
    ttl: float | None


class Stored(TypedDict):
    key: str
    stored: bool


class Deleted(TypedDict):
    key: str
    deleted: bool


class CacheCounters(TypedDict):
    """Counters of one cache in this service process since it started."""

    cache: str
    stats: dict[str, float]


@router.get("/{name}/keys/{key:cachekey}", response_model=CacheEntry, responses=errors(400, 404))
async def cache_get(request: Request, name: CacheName, key: CacheKey) -> Response:
    """Read an entry: its value and remaining ttl; 404 on a miss (a stored null is a hit)."""
    svc = services(request)
    cache = svc.cache_view(name)
    value = await cache.get(key, MISSING)
    if value is MISSING:
        raise ApiError(404, "key_not_found", "no entry with that key", field="key")
    svc.keep_cache(name)
    ttl = await cache.ttl(key)
    return json_response(
        {"key": key, "value": value, "ttl": None if ttl is None else round(ttl, 3)}
    )


@router.put("/{name}/keys/{key:cachekey}", response_model=Stored, responses=errors(400, 413, 422))
async def cache_put(request: Request, name: CacheName, key: CacheKey, body: CachePut) -> Response:
    """Write an entry (without ttl the cache's default applies)."""
    await services(request).cache(name).set(key, body.value, ttl=body.ttl)
    return json_response({"key": key, "stored": True})


@router.delete("/{name}/keys/{key:cachekey}", response_model=Deleted, responses=errors(400))
async def cache_delete(request: Request, name: CacheName, key: CacheKey) -> Response:
    """Delete an entry; ``deleted`` says whether it existed."""
    deleted = await services(request).cache_view(name).delete(key)
    return json_response({"key": key, "deleted": bool(deleted)})


@router.get("/{name}/stats", response_model=CacheCounters, responses=errors(400))
async def cache_stats(request: Request, name: CacheName) -> Response:
    """Hits, misses, sets... of a cache in this process (zeros for one it never opened)."""
    svc = services(request)
    opened = svc.caches is not None and name in svc.caches.names()
    stats = svc.cache(name).stats() if opened else CacheStats()
    return json_response({"cache": name, "stats": stats.as_dict()})
