"""Build a :class:`Source` or :class:`Target` from a parsed :class:`Endpoint`."""

from __future__ import annotations

from collections.abc import Mapping

from redkeep.cache.base import CacheService
from redkeep.cache.redis import RedisCache, list_cache_names
from redkeep.config import Settings
from redkeep.errors import ConfigError
from redkeep.migrate.endpoints import Endpoint
from redkeep.migrate.sources import ServiceSource, SnapshotSource, Source, StoreSource
from redkeep.migrate.targets import SnapshotTarget, StoreTarget, Target
from redkeep.queue.base import JobQueue
from redkeep.queue.redis import RedisJobQueue, list_queue_names
from redkeep.redis.base import RedisClient
from redkeep.serialization import JsonSerializer

__all__ = ["open_client", "open_source", "open_target"]

# Migration copies whatever the source holds: no key-length or payload limit of its own.
_MAX_KEY = 1 << 20
_SERIALIZER = JsonSerializer(max_payload_bytes=1 << 40)


def open_client(endpoint: Endpoint, settings: Settings) -> RedisClient:
    """A client for a ``redis``, ``upstash`` or ``settings`` endpoint (timeouts from settings)."""
    if endpoint.kind == "redis":
        from redkeep.redis.factory import create_redis_client

        return create_redis_client(
            settings,
            endpoint.url,
            cluster=endpoint.cluster,
            command_timeout=max(settings.command_timeout, 5.0),
        )
    if endpoint.kind == "upstash":
        from redkeep.redis.upstash import UpstashRestClient

        assert endpoint.token is not None
        return UpstashRestClient(
            endpoint.url, endpoint.token, command_timeout=max(settings.command_timeout, 5.0)
        )
    if endpoint.kind == "settings":
        from redkeep.redis.factory import create_client

        client = create_client(settings)
        if client is None:
            raise ConfigError(
                "'settings' names the configured backend, but it is memory: set "
                "REDKEEP_REDIS_URL or Upstash credentials",
                {"REDKEEP_BACKEND": "memory has nothing to migrate to or from"},
            )
        return client
    raise ConfigError(f"{endpoint.display} is not a Redis endpoint")


def _cache(client: RedisClient, name: str, prefix: str) -> RedisCache:
    return RedisCache(
        client, name, key_prefix=prefix, max_key_length=_MAX_KEY, serializer=_SERIALIZER
    )


def _queue(client: RedisClient, name: str, prefix: str) -> RedisJobQueue:
    return RedisJobQueue(client, name, key_prefix=prefix, max_payload_bytes=1 << 40)


def open_source(endpoint: Endpoint, settings: Settings) -> Source:
    """The source for ``endpoint`` (nothing connects before the migration starts)."""
    if endpoint.kind == "snapshot":
        assert endpoint.path is not None
        return SnapshotSource(endpoint.path, _SERIALIZER)
    if endpoint.kind == "service":
        return ServiceSource(endpoint.url, endpoint.token, serializer=_SERIALIZER)
    client = open_client(endpoint, settings)
    prefix = endpoint.key_prefix

    async def stores() -> tuple[Mapping[str, CacheService], Mapping[str, JobQueue]]:
        caches = {n: _cache(client, n, prefix) for n in await list_cache_names(client, prefix)}
        queues = {n: _queue(client, n, prefix) for n in await list_queue_names(client, prefix)}
        return caches, queues

    return StoreSource(stores, endpoint.display, on_close=client.close)


def open_target(endpoint: Endpoint, settings: Settings) -> Target:
    """The target for ``endpoint``; a running service cannot be a target."""
    if endpoint.kind == "snapshot":
        assert endpoint.path is not None
        return SnapshotTarget(endpoint.path, _SERIALIZER)
    if endpoint.kind == "service":
        raise ConfigError(
            "--to: a running service cannot be a migration target; migrate to its Redis "
            "(redis://...) or to a snapshot file",
            {"--to": "service targets are not supported"},
        )
    client = open_client(endpoint, settings)
    prefix = endpoint.key_prefix
    return StoreTarget(
        lambda n: _cache(client, n, prefix),
        lambda n: _queue(client, n, prefix),
        endpoint.display,
        on_close=client.close,
        max_concurrency=32,
    )
