"""Fixtures of the cache tests: ``cache`` runs one contract suite over every backend.

``cache`` is parametrized over memory, Redis (RESP, shared server), Redis Cluster (private),
the Upstash REST emulator and FallbackCache over RESP. Remote caches use the test's unique
``prefix`` as key prefix, so tests never touch each other's keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from redkeep.cache import CacheService, FallbackCache, MemoryCache, RedisCache
from redkeep.redis.base import RedisClient

BACKENDS = [
    "memory",
    "resp",
    pytest.param("cluster", marks=pytest.mark.cluster),
    pytest.param("upstash", marks=pytest.mark.upstash),
    "fallback",
]


async def open_client(request: pytest.FixtureRequest, kind: str) -> RedisClient:
    """A fresh RedisClient of transport ``kind`` (resp / cluster / upstash)."""
    if kind == "resp":
        from redkeep.redis.resp import RespClient

        return RespClient(request.getfixturevalue("redis_url"))
    if kind == "cluster":
        from redkeep.redis.resp import RespClient

        cluster = request.getfixturevalue("redis_cluster")
        return RespClient(cluster.url, cluster=True)
    if kind == "upstash":
        from redkeep.redis.upstash import UpstashRestClient

        emulator = request.getfixturevalue("upstash_emulator")
        return UpstashRestClient(emulator.url, emulator.token)
    raise ValueError(kind)


@pytest.fixture
async def make_cache(
    request: pytest.FixtureRequest, prefix: str
) -> AsyncIterator[Callable[..., Any]]:
    """``await make_cache(kind, name="c", **options) -> CacheService``; closed after the test."""
    caches: list[CacheService] = []
    clients: list[RedisClient] = []

    async def make(kind: str, name: str = "c", **options: Any) -> CacheService:
        cache: CacheService
        if kind == "memory":
            cache = MemoryCache(name, **options)
        else:
            client = await open_client(request, "resp" if kind == "fallback" else kind)
            clients.append(client)
            breaker = options.pop("breaker", None)
            cache = RedisCache(client, name, key_prefix=prefix, **options)
            if kind == "fallback":
                cache = FallbackCache(cache, breaker=breaker)
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        await cache.close()
    for client in clients:
        await client.close()


@pytest.fixture(params=BACKENDS)
async def cache(request: pytest.FixtureRequest, make_cache: Callable[..., Any]) -> CacheService:
    """One cache per backend kind, named ``c``."""
    return await make_cache(request.param)  # type: ignore[no-any-return]
