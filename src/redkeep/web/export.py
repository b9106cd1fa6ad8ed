"""``GET /v1/export``: the service's caches and jobs as a streamed JSON Lines snapshot.

This is how ``redkeep migrate --from http://127.0.0.1:8000`` reads a service that runs on the
memory backends (nothing else can see its memory). The body is a snapshot in the format of
:mod:`redkeep.migrate.snapshot`; the final ``end`` record tells the reader the stream is
complete. Like every ``/v1`` route it requires the bearer token when one is configured.

On a memory backend the export holds the caches and queues the service has opened; on Redis it
holds every cache and queue found under the key prefix. ``?caches=a,b`` and ``?queues=x`` limit
the export to those names (an empty value exports none of that kind).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from redkeep.cache.base import CacheService
from redkeep.errors import RedkeepError, scrub
from redkeep.migrate.snapshot import encode_record, end_line, error_line, header_line
from redkeep.migrate.sources import StoreSource
from redkeep.names import is_valid_name
from redkeep.queue.base import JobQueue
from redkeep.web.routing import api_router, errors

if TYPE_CHECKING:
    from redkeep.services import Services

__all__ = ["MEDIA_TYPE", "export", "router", "service_stores"]

log = logging.getLogger("redkeep.web.export")
MEDIA_TYPE = "application/x-ndjson"


async def service_stores(
    services: Services,
    caches: list[str] | None = None,
    queues: list[str] | None = None,
) -> tuple[dict[str, CacheService], dict[str, JobQueue]]:
    """The caches and queues of ``services`` to export (optionally only the given names)."""
    from redkeep.cache.redis import RedisCache, list_cache_names
    from redkeep.queue.redis import list_queue_names

    s = services.settings
    client = services.client
    cache_map: dict[str, CacheService] = {}
    if client is None:
        names = services.caches.names() if services.caches is not None else []
        for name in names if caches is None else [n for n in names if n in caches]:
            cache_map[name] = services.cache(name)
        queue_names = services.queue_names()
    else:
        names = await list_cache_names(client, s.key_prefix)
        for name in names if caches is None else [n for n in names if n in caches]:
            cache_map[name] = RedisCache(client, name, key_prefix=s.key_prefix)
        queue_names = sorted(set(await list_queue_names(client, s.key_prefix)))
    if queues is not None:
        queue_names = [n for n in queue_names if n in queues]
    # Views, not services.queue(): exporting must not take the service's named-queue slots.
    queue_map = {name: services.queue_view(name) for name in queue_names if is_valid_name(name)}
    return cache_map, queue_map


def _names(request: Request, param: str) -> list[str] | None:
    raw = request.query_params.get(param)
    if raw is None:
        return None
    return [n for n in (part.strip() for part in raw.split(",")) if n]


async def _stream(
    caches: Mapping[str, CacheService], queues: Mapping[str, JobQueue]
) -> AsyncIterator[bytes]:
    yield header_line(caches=sorted(caches), queues=sorted(queues))

    async def stores() -> tuple[Mapping[str, CacheService], Mapping[str, JobQueue]]:
        return caches, queues

    count = 0
    chunk: list[bytes] = []
    try:
        async for line in StoreSource(stores, "export").lines():
            if line.record is not None:
                chunk.append(encode_record(line.record))
            elif line.error is not None:  # an unreadable value: the reader reports it
                chunk.append(error_line(line.error))
            count += 1
            if len(chunk) >= 200:
                yield b"".join(chunk)
                chunk.clear()
    except RedkeepError as exc:
        # The status line is already sent: stop without the end record, so that the reader
        # reports a truncated export instead of importing part of it silently.
        log.error("export stopped after %d records: %s", count, scrub(str(exc)))
        if chunk:
            yield b"".join(chunk)
        return
    if chunk:
        yield b"".join(chunk)
    yield end_line(count)


router = api_router(tags=["migration"])


@router.get(
    "/v1/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Snapshot records, one JSON object per line.",
            "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
        **errors(400),
    },
)
async def export(
    request: Request, caches: str | None = None, queues: str | None = None
) -> Response:
    """Stream every cache entry and job as JSON Lines; ``caches`` and ``queues`` are
    comma-separated names to limit the export to."""
    services: Services = request.app.state.services
    cache_map, queue_map = await service_stores(
        services, _names(request, "caches"), _names(request, "queues")
    )
    headers = {"Content-Disposition": 'attachment; filename="redkeep-export.jsonl"'}
    return StreamingResponse(_stream(cache_map, queue_map), media_type=MEDIA_TYPE, headers=headers)
