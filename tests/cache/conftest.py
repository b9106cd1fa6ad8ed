"""Fixtures of the cache tests: ``cache`` runs one contract suite over every backend.

``cache`` is parametrized over memory, every RESP transport (tests/support/clients.py: mux and
redis-py on the shared server, a private Cluster and Sentinel set), the Upstash REST emulator
and FallbackCache over mux. Remote caches use the test's unique
``prefix`` as key prefix, so tests never touch each other's keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from redkeep.cache import CacheService, FallbackCache, MemoryCache, RedisCache
from redkeep.redis.base import RedisClient
from tests.support.clients import RESP_TRANSPORTS, open_client

BACKENDS = [
    "memory",
    *RESP_TRANSPORTS,
    pytest.param("upstash", marks=pytest.mark.upstash),
    "fallback",
]


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
            client = open_client(request, "mux" if kind == "fallback" else kind)
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
