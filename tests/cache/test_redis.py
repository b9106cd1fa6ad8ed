"""RedisCache specifics: key layout, one round trip per batch, cache names, AOF persistence."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis as sync_redis

from redkeep.cache import RedisCache, list_cache_names
from redkeep.redis.mux import MuxClient


class Recorder:
    """A CommandObserver collecting command names."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def on_command(self, transport: str, command: str, seconds: float, error: str | None) -> None:
        self.commands.append(command)


async def test_key_layout_and_px_ttl(resp_client: MuxClient, prefix: str, redis_url: str) -> None:
    c = RedisCache(resp_client, "sessions", key_prefix=prefix)
    await c.set("user:{42}", {"a": 1}, ttl=12.5)
    with sync_redis.Redis.from_url(redis_url, decode_responses=True) as r:
        full = f"{prefix}:cache:sessions:user:{{42}}"
        assert r.get(full) == '{"a":1}'
        assert 12_000 < r.pttl(full) <= 12_500


async def test_batches_take_one_round_trip(redis_url: str, prefix: str) -> None:
    rec = Recorder()
    client = MuxClient(redis_url, observer=rec)
    try:
        c = RedisCache(client, "c", key_prefix=prefix)
        await c.set_many({f"k{i}": i for i in range(100)}, ttl=60)
        await c.get_many([f"k{i}" for i in range(100)])
        await c.delete_many([f"k{i}" for i in range(100)])
        await c.get("k1")
        await c.set("k1", 1)
        assert len(rec.commands) == 5, rec.commands
    finally:
        await client.close()


async def test_list_cache_names(resp_client: MuxClient, prefix: str) -> None:
    for name in ("users", "pages", "a-b.c_d"):
        await RedisCache(resp_client, name, key_prefix=prefix).set("x:y", 1)
    await resp_client.set(f"{prefix}:queue:jobs", "not a cache")
    await resp_client.set(f"{prefix}:cachelock:users:x", "lock")
    assert await list_cache_names(resp_client, prefix) == ["a-b.c_d", "pages", "users"]
    assert await list_cache_names(resp_client, prefix + "-none") == []


async def test_clear_removes_nothing_outside_namespace(resp_client: MuxClient, prefix: str) -> None:
    a = RedisCache(resp_client, "a", key_prefix=prefix)
    ab = RedisCache(resp_client, "ab", key_prefix=prefix)
    await a.set("k", 1)
    await ab.set("k", 2)
    await resp_client.set(f"{prefix}:cache:a", "no trailing colon")
    assert await a.clear() == 1
    assert await ab.get("k") == 2
    assert await resp_client.get(f"{prefix}:cache:a") == "no trailing colon"


async def test_value_survives_restart_with_aof(
    redis_server_factory: Callable[..., Any], prefix: str
) -> None:
    server = redis_server_factory(appendonly=True, appendfsync="always")
    client = MuxClient(server.url)
    try:
        c = RedisCache(client, "durable", key_prefix=prefix)
        await c.set("order:1", {"total": 12.5, "items": ["a", "b"]}, ttl=3600)
        await c.set("plain", "no ttl")
    finally:
        await client.close()
    server.restart(graceful=False)  # SIGKILL: only the fsynced AOF brings the data back
    client = MuxClient(server.url)
    try:
        c = RedisCache(client, "durable", key_prefix=prefix)
        assert await c.get("order:1") == {"total": 12.5, "items": ["a", "b"]}
        assert await c.get("plain") == "no ttl"
        remaining = await c.ttl("order:1")
        assert remaining is not None and 3500 < remaining <= 3600
    finally:
        await client.close()


async def test_errors_are_counted(redis_server_factory: Callable[..., Any], prefix: str) -> None:
    server = redis_server_factory()
    client = MuxClient(server.url, retry_attempts=0, connect_timeout=1, command_timeout=1)
    try:
        c = RedisCache(client, "c", key_prefix=prefix)
        await c.set("k", 1)
        server.kill()
        try:
            await c.get("k")
        except Exception as exc:
            assert type(exc).__name__ in ("BackendUnavailable", "BackendTimeout")
        else:
            raise AssertionError("get on a dead server must raise")
        assert c.stats().errors == 1
    finally:
        await client.close()
