"""redkeep caches as cache peers of the shared benchmark harness (/work/shared/bench).

Run from the project root, e.g.::

    BENCH_REDIS_PORT=6391 BENCH_EXTRA_PYTHONPATH=bench BENCH_ONLY=cache \\
    BENCH_EXTRA_CACHE=raw,redkeep_cache_peer:RedkeepRedisCache,raw \\
      ../shared/bench/run_peers.sh

Each class uses exactly the server and DB it is given; keys get the prefix ``bench:cache:peer:``.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from redkeep.cache import FallbackCache, MemoryCache, RedisCache
from redkeep.redis.mux import MuxClient
from redkeep.redis.redispy import RedisPyClient

_PREFIX = "bench"


def _versions() -> str:
    return f"redkeep {version('redkeep')} (redis-py {version('redis')}, orjson {version('orjson')})"


class RedkeepRedisCache:
    """redkeep RedisCache over MuxClient (the multiplexed fast path, decode to str)."""

    name = "redkeep RedisCache"

    def __init__(self, host: str, port: int, db: int) -> None:
        self.client = MuxClient(f"redis://{host}:{port}/{db}")
        self.cache = self._make()
        self.ver = _versions()
        self.notes = (
            "JsonSerializer (orjson); MuxClient defaults: one multiplexed connection, "
            "busy-poll 200 us, retry_attempts=3, command_timeout=2s; no TTL"
        )

    def _make(self) -> Any:
        return RedisCache(self.client, "peer", key_prefix=_PREFIX)

    async def get(self, key: str) -> Any:
        return await self.cache.get(key)

    async def set(self, key: str, value: Any) -> None:
        await self.cache.set(key, value)

    async def close(self) -> None:
        await self.cache.close()
        await self.client.close()


class RedkeepRedisCacheRedisPy(RedkeepRedisCache):
    """redkeep RedisCache over the reference transport (redis-py's public API, coalesced)."""

    name = "redkeep RedisCache (redis-py transport)"

    def __init__(self, host: str, port: int, db: int) -> None:
        super().__init__(host, port, db)
        self.client = RedisPyClient(f"redis://{host}:{port}/{db}")
        self.cache = self._make()
        self.notes = (
            "JsonSerializer (orjson); RedisPyClient defaults: redis-py public API, concurrent "
            "commands coalesced into pipelines, retry_attempts=3, command_timeout=2s; no TTL"
        )


class RedkeepFallbackCache(RedkeepRedisCache):
    """redkeep FallbackCache (Redis healthy: every call goes to the RedisCache)."""

    name = "redkeep FallbackCache"

    def _make(self) -> Any:
        return FallbackCache(RedisCache(self.client, "peer", key_prefix=_PREFIX))


class RedkeepMemoryCache:
    """redkeep MemoryCache (process-local; ignores the server)."""

    name = "redkeep MemoryCache"

    def __init__(self, host: str, port: int, db: int) -> None:
        self.cache = MemoryCache("peer", max_entries=100_000)
        self.ver = _versions()
        self.notes = "in-process LRU, values stored serialized (orjson); no Redis"

    async def get(self, key: str) -> Any:
        return await self.cache.get(key)

    async def set(self, key: str, value: Any) -> None:
        await self.cache.set(key, value)

    async def close(self) -> None:
        await self.cache.close()
