"""Fixtures of the cache tests: ``cache`` runs one contract suite over every backend.

``cache`` is parametrized over memory, every RESP transport (tests/support/clients.py: mux and
redis-py on the shared server, a private Cluster and Sentinel set), the Upstash REST emulator,
FallbackCache over mux, and TieredCache (an L1 with its invalidation listener) over a
FallbackCache over mux and over the Cluster. Remote caches use the test's unique ``prefix`` as
key prefix, so tests never touch each other's keys.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from redkeep.cache import (
    CacheService,
    FallbackCache,
    InvalidationListener,
    MemoryCache,
    RedisCache,
    TieredCache,
)
from redkeep.redis.base import RedisClient
from tests.support.clients import RESP_TRANSPORTS, open_client

BACKENDS = [
    "memory",
    *RESP_TRANSPORTS,
    pytest.param("upstash", marks=pytest.mark.upstash),
    "fallback",
    "tiered",
    pytest.param("tiered_cluster", marks=pytest.mark.cluster),
]


async def wait_until_fresh(listener: InvalidationListener, timeout: float = 10.0) -> None:
    """Start ``listener`` and wait (bounded) until its channel is established and fresh."""
    listener.ensure_started()
    deadline = time.monotonic() + timeout
    while not listener.fresh():
        assert time.monotonic() < deadline, f"invalidation channel not up: {listener.last_error}"
        await asyncio.sleep(0.005)


@pytest.fixture
async def make_cache(
    request: pytest.FixtureRequest, prefix: str
) -> AsyncIterator[Callable[..., Any]]:
    """``await make_cache(kind, name="c", **options) -> CacheService``; closed after the test."""
    caches: list[CacheService] = []
    clients: list[RedisClient] = []
    listeners: list[InvalidationListener] = []

    async def make(kind: str, name: str = "c", **options: Any) -> CacheService:
        cache: CacheService
        if kind == "memory":
            cache = MemoryCache(name, **options)
        else:
            transport = {"fallback": "mux", "tiered": "mux", "tiered_cluster": "cluster"}.get(
                kind, kind
            )
            client = open_client(request, transport)
            clients.append(client)
            breaker = options.pop("breaker", None)
            l1_options = {
                k: options.pop(k) for k in ("max_entries", "max_bytes", "l1_ttl") if k in options
            }
            cache = RedisCache(client, name, key_prefix=prefix, **options)
            if kind in ("fallback", "tiered"):
                cache = FallbackCache(cache, breaker=breaker)
            if kind == "tiered":
                listener = InvalidationListener(
                    request.getfixturevalue("redis_url"), key_prefix=prefix
                )
                listeners.append(listener)
                cache = TieredCache(cache, listener, **l1_options)
                await wait_until_fresh(listener)
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        await cache.close()
    for listener in listeners:
        await listener.close()
    for client in clients:
        await client.close()


@pytest.fixture(params=BACKENDS)
async def cache(request: pytest.FixtureRequest, make_cache: Callable[..., Any]) -> CacheService:
    """One cache per backend kind, named ``c``."""
    return await make_cache(request.param)  # type: ignore[no-any-return]
