"""CacheManager: backend choice from Settings, per-cache options, shared client and breaker."""

from __future__ import annotations

import pytest

from redkeep.cache import CacheConfig, CacheManager, FallbackCache, MemoryCache, RedisCache
from redkeep.config import Settings
from redkeep.errors import ConfigError


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def test_memory_when_no_backend_configured() -> None:
    async with CacheManager(settings(backend="memory", cache_max_entries=7)) as m:
        c = m.get("sessions")
        assert isinstance(c, MemoryCache)
        assert c.max_entries == 7
        assert m.get("sessions") is c
        assert m.names() == ["sessions"]
        assert m.client is None
        with pytest.raises(ConfigError, match="needs"):
            m.configure("remote", backend="redis")
            m.get("remote")


async def test_fallback_over_redis_is_the_default(redis_url: str, prefix: str) -> None:
    s = settings(redis_url=redis_url, key_prefix=prefix, cache_default_ttl=30)
    m = CacheManager(s)
    try:
        c = m.get("pages")
        assert isinstance(c, FallbackCache)
        assert c.breaker is m.breaker
        assert c.primary.namespace == f"{prefix}:cache:pages:"
        await c.set("k", {"v": 1})
        assert await c.get("k") == {"v": 1}
        remaining = await c.ttl("k")
        assert remaining is not None and 29 < remaining <= 30
        client = m.client
        assert client is not None
        assert await client.get(f"{prefix}:cache:pages:k") == '{"v":1}'
    finally:
        await m.close()
    assert m.client is None  # the manager created it, so it closed it
    with pytest.raises(RuntimeError, match="closed"):
        m.get("other")


async def test_per_cache_options(redis_url: str, prefix: str) -> None:
    s = settings(redis_url=redis_url, key_prefix=prefix, cache_fallback=False)
    m = CacheManager(
        s,
        configs={
            "local": CacheConfig(backend="memory", max_entries=3, default_ttl=5),
            "safe": CacheConfig(backend="fallback"),
            "locked": CacheConfig(lock=True, default_ttl=60),
        },
    )
    try:
        local, safe, locked, plain = (m.get(n) for n in ("local", "safe", "locked", "plain"))
        assert isinstance(local, MemoryCache) and local.max_entries == 3
        assert local.default_ttl == 5
        assert isinstance(safe, FallbackCache)
        assert isinstance(locked, RedisCache) and locked.lock_timeout == s.cache_lock_timeout
        assert locked.default_ttl == 60
        assert isinstance(plain, RedisCache) and plain.lock_timeout is None
        assert m.backend_of("plain") == "redis"
        assert await locked.get_or_set("k", lambda: "v") == "v"
        with pytest.raises(ValueError, match="already exists"):
            m.configure("plain", default_ttl=3)
        with pytest.raises(ValueError, match="cache name"):
            m.get("bad name")
    finally:
        await m.close()


async def test_shared_client_is_not_closed(resp_client: object, prefix: str) -> None:
    from redkeep.redis.mux import MuxClient

    assert isinstance(resp_client, MuxClient)
    m = CacheManager(settings(key_prefix=prefix), client=resp_client)
    c = m.get("x")
    assert isinstance(c, FallbackCache)
    await c.set("k", 1)
    await m.close()
    assert await resp_client.get(f"{prefix}:cache:x:k") == "1"  # still usable
