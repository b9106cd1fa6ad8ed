"""TieredCache on a private 3-primary Redis Cluster: one tracking connection per primary."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from redkeep.cache import InvalidationListener, RedisCache, TieredCache
from redkeep.redis.redispy import RedisPyClient
from tests.cache.conftest import wait_until_fresh
from tests.cache.test_tiered import eventually

pytestmark = pytest.mark.cluster

KEYS = [f"key-{i}" for i in range(30)]  # spread over the slots of all three primaries


class ClusterSide:
    def __init__(self, url: str, prefix: str) -> None:
        self.client = RedisPyClient(url, cluster=True)
        self.listener = InvalidationListener(url, key_prefix=prefix, cluster=True)
        self.cache = TieredCache(RedisCache(self.client, "c", key_prefix=prefix), self.listener)

    async def close(self) -> None:
        await self.cache.close()
        await self.listener.close()
        await self.client.close()


async def test_writes_on_every_primary_reach_the_l1_and_a_killed_node_bypasses_it(
    redis_cluster: Any, prefix: str
) -> None:
    reader = ClusterSide(redis_cluster.url, prefix)
    writer = ClusterSide(redis_cluster.url, prefix)
    try:
        await wait_until_fresh(reader.listener)
        primaries = sorted(f"127.0.0.1:{port}" for port in redis_cluster.ports)
        assert sorted(reader.listener.nodes) == primaries
        await writer.cache.set_many({k: 0 for k in KEYS})
        await reader.listener.sync()
        assert await reader.cache.get_many(KEYS) == {k: 0 for k in KEYS}
        assert len(reader.cache.l1) == len(KEYS)
        await writer.cache.set_many({k: 1 for k in KEYS})  # writes land on all three primaries
        await eventually(lambda: len(reader.cache.l1) == 0)
        assert await reader.cache.get_many(KEYS) == {k: 1 for k in KEYS}
        # Kill the tracking connection on one primary only: every L1 entry is dropped.
        assert len(reader.cache.l1) == len(KEYS)
        port = redis_cluster.ports[0]
        with redis.Redis(port=port) as node:
            for client in node.client_list():
                if client.get("name") == "redkeep-invalidation":
                    node.client_kill_filter(_id=client["id"])
        await eventually(lambda: reader.listener.losses >= 1)
        assert len(reader.cache.l1) == 0
        await eventually(lambda: reader.cache.l1_state == "on")
        assert await reader.cache.get_many(KEYS) == {k: 1 for k in KEYS}
    finally:
        await reader.close()
        await writer.close()
