"""One way for every contract suite to open a client of each transport.

``TRANSPORTS`` parametrizes the client, cache and queue contract suites: the multiplexed fast
path and the redis-py reference on the shared standalone server, the reference on a private
Cluster and a private Sentinel set, and the Upstash REST emulator.
"""

from __future__ import annotations

from typing import Any

import pytest

from redkeep.redis.base import RedisClient

__all__ = ["RESP_TRANSPORTS", "TRANSPORTS", "open_client"]

RESP_TRANSPORTS = [
    "mux",
    "redis-py",
    pytest.param("cluster", marks=pytest.mark.cluster),
    pytest.param("sentinel", marks=pytest.mark.sentinel),
]
TRANSPORTS = [*RESP_TRANSPORTS, pytest.param("upstash", marks=pytest.mark.upstash)]


def open_client(request: pytest.FixtureRequest, kind: str, **options: Any) -> RedisClient:
    """A fresh client of transport ``kind`` (not connected until first used)."""
    from redkeep.redis.mux import MuxClient
    from redkeep.redis.redispy import RedisPyClient

    if kind == "mux":
        return MuxClient(request.getfixturevalue("redis_url"), **options)
    if kind == "redis-py":
        return RedisPyClient(request.getfixturevalue("redis_url"), **options)
    if kind == "cluster":
        return RedisPyClient(request.getfixturevalue("redis_cluster").url, cluster=True, **options)
    if kind == "sentinel":
        return RedisPyClient(request.getfixturevalue("redis_sentinel").url, **options)
    if kind == "upstash":
        from redkeep.redis.upstash import UpstashRestClient

        emulator = request.getfixturevalue("upstash_emulator")
        return UpstashRestClient(emulator.url, emulator.token, **options)
    raise ValueError(kind)
