"""TieredCache: L1 hits, invalidation by other clients, expiry, channel loss and lag, fallback.

Every test runs against a real Redis: the shared one (unique key prefix) or a private
redis-server where the test kills connections, pauses or stops the server.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis

from redkeep.cache import FallbackCache, InvalidationListener, RedisCache, TieredCache
from redkeep.redis.mux import MuxClient
from redkeep.resilience import CircuitBreaker
from tests.cache.conftest import wait_until_fresh
from tests.support.redis_server import RedisServer

Factory = Callable[..., RedisServer]


class Tiered:
    """A TieredCache over a FallbackCache (or a RedisCache) on ``url``, with its listener."""

    def __init__(self, url: str, prefix: str, *, fallback: bool = True, **options: Any) -> None:
        self.client = MuxClient(url, command_timeout=0.5, retry_attempts=1)
        self.redis = RedisCache(self.client, "t", key_prefix=prefix)
        breaker = CircuitBreaker("t", reset_timeout=0.2)
        self.l2: RedisCache | FallbackCache = (
            FallbackCache(self.redis, breaker=breaker) if fallback else self.redis
        )
        self.listener = InvalidationListener(
            url,
            key_prefix=prefix,
            max_lag=options.pop("max_lag", 1.0),
            connect_timeout=1.0,
            command_timeout=0.5,
        )
        self.cache = TieredCache(self.l2, self.listener, **options)

    async def close(self) -> None:
        await self.cache.close()
        await self.listener.close()
        await self.client.close()


@pytest.fixture
async def tiered(prefix: str) -> AsyncIterator[Callable[..., Any]]:
    """``await tiered(url, **options) -> Tiered`` with a fresh channel; closed after the test."""
    made: list[Tiered] = []

    async def make(url: str, **options: Any) -> Tiered:
        t = Tiered(url, prefix, **options)
        made.append(t)
        await wait_until_fresh(t.listener)
        return t

    yield make
    for t in made:
        await t.close()


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> float:
    """Poll the (sync or async) ``check`` until truthy; returns the seconds it took."""
    start = time.monotonic()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, "condition not met in time"
        await asyncio.sleep(0.002)


def kill_tracking(server: RedisServer) -> int:
    """CLIENT KILL every invalidation connection on ``server``; how many were killed."""
    ids = [
        line.split("id=", 1)[1].split(" ", 1)[0]
        for line in server.cli("CLIENT", "LIST").splitlines()
        if "name=redkeep-invalidation" in line
    ]
    for client_id in ids:
        server.cli("CLIENT", "KILL", "ID", client_id)
    return len(ids)


async def test_second_read_is_an_l1_hit_without_a_redis_command(
    tiered: Callable[..., Any], redis_url: str, prefix: str
) -> None:
    t = await tiered(redis_url)
    raw = aredis.Redis.from_url(redis_url)
    try:
        await raw.set(f"{prefix}:cache:t:k", '{"v":1}')
        await t.listener.sync()  # the SET's own invalidation is behind us
        assert await t.cache.get("k") == {"v": 1}
        redis_ops = t.redis.stats().operations
        for _ in range(5):
            assert await t.cache.get("k") == {"v": 1}
        stats = t.cache.stats()
        assert t.redis.stats().operations == redis_ops  # no Redis command for the hits
        assert (stats.l1_hits, stats.l1_misses) == (5, 1)
        assert stats.hits == 6 and stats.misses == 0
        assert await t.cache.get_many(["k", "absent"]) == {"k": {"v": 1}}
        assert t.cache.stats().l1_hits == 6
    finally:
        await raw.aclose()


async def test_write_by_another_client_reaches_l1_promptly(
    tiered: Callable[..., Any], redis_url: str, prefix: str
) -> None:
    t = await tiered(redis_url)
    other = await tiered(redis_url)  # a second "process": its own client, listener and L1
    await t.cache.set("k", "v1")
    await t.listener.sync()
    assert await t.cache.get("k") == "v1"
    assert t.cache.l1.get("k") is not None
    await other.cache.set("k", "v2")  # through redkeep
    await eventually(lambda: t.cache.l1.get("k") is None, timeout=10)  # bench/ measures latency
    assert await t.cache.get("k") == "v2"
    raw = aredis.Redis.from_url(redis_url)  # a client that knows nothing of redkeep
    try:
        await raw.set(f"{prefix}:cache:t:k", '"v3"')
        await eventually(lambda: t.cache.l1.get("k") is None)
        assert await t.cache.get("k") == "v3"
        await raw.delete(f"{prefix}:cache:t:k")
        await eventually(lambda: t.cache.l1.get("k") is None)
        assert await t.cache.get("k") is None
    finally:
        await raw.aclose()
    assert t.cache.stats().l1_invalidations >= 2


async def test_every_write_kind_invalidates_other_processes(
    tiered: Callable[..., Any], redis_url: str
) -> None:
    reader = await tiered(redis_url)
    writer = await tiered(redis_url)
    await writer.cache.set_many({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})

    async def cached(key: str) -> Any:
        await reader.listener.sync()
        value = await reader.cache.get(key)
        assert reader.cache.l1.get(key) is not None
        return value

    async def dropped(key: str) -> None:
        await eventually(lambda: reader.cache.l1.get(key) is None)

    assert await cached("a") == 1
    await writer.cache.incr("a", 5)
    await dropped("a")
    assert await cached("a") == 6
    await writer.cache.touch("a", 60)
    await dropped("a")
    assert await cached("b") == 2
    await writer.cache.delete_many(["b"])
    await dropped("b")
    assert await cached("c") == 3
    await writer.cache.set_many({"c": 30})
    await dropped("c")
    assert await cached("d") == 4
    await writer.cache.clear()
    await dropped("d")
    assert await reader.cache.get_many(["a", "b", "c", "d", "e"]) == {}


async def test_l1_entry_never_outlives_its_redis_ttl(
    tiered: Callable[..., Any], redis_url: str
) -> None:
    t = await tiered(redis_url, l1_ttl=30)
    await t.cache.set("short", "v", ttl=0.3)
    await t.listener.sync()
    assert await t.cache.get("short") == "v"
    assert await t.cache.get("short") == "v"
    assert t.cache.stats().l1_hits == 1
    await asyncio.sleep(0.35)
    assert t.cache.l1.get("short") is None  # expired in L1 by itself, whatever Redis sent
    assert await t.cache.get("short") is None


async def test_lost_channel_clears_and_bypasses_l1_until_back(
    tiered: Callable[..., Any], redis_server_factory: Factory, prefix: str
) -> None:
    server = redis_server_factory()
    t = await tiered(server.url)
    await t.cache.set("k", "v1")
    await t.listener.sync()
    assert await t.cache.get("k") == "v1"
    assert len(t.cache.l1) == 1
    assert kill_tracking(server) == 1
    await eventually(lambda: t.listener.losses == 1)
    assert len(t.cache.l1) == 0  # cleared the moment the loss was seen
    # Until it is back, reads go to Redis: a write the dead channel could not report is seen.
    raw = aredis.Redis.from_url(server.url)
    try:
        await raw.set(f"{prefix}:cache:t:k", '"v2"')
        if t.cache.l1_state == "bypassed":
            assert await t.cache.get("k") == "v2"
            assert t.cache.stats().l1_bypassed_reads >= 1
        await eventually(lambda: t.cache.l1_state == "on")
        assert await t.cache.get("k") == "v2"
        assert await t.cache.get("k") == "v2"
        assert t.cache.l1.get("k") is not None  # L1 in use again
        await raw.set(f"{prefix}:cache:t:k", '"v3"')  # the new channel reports writes
        await eventually(lambda: t.cache.l1.get("k") is None)
        assert await t.cache.get("k") == "v3"
    finally:
        await raw.aclose()


async def test_lagging_channel_bypasses_l1_without_dropping_it(
    tiered: Callable[..., Any], redis_server_factory: Factory
) -> None:
    server = redis_server_factory()
    t = await tiered(server.url, max_lag=0.2)
    await t.cache.set("k", "v")
    await t.listener.sync()
    assert await t.cache.get("k") == "v"
    server.pause()  # SIGSTOP: the connection stays open, PINGs go unanswered
    try:
        took = await eventually(lambda: t.cache.l1_state == "bypassed", timeout=10)
        assert took < 0.2 + 2.0  # max_lag plus room for a loaded machine
        assert len(t.cache.l1) == 1  # nothing was lost, only not trusted
        assert t.cache.l1_status()["reason"].startswith("invalidation channel lags")
    finally:
        server.resume()
    await eventually(lambda: t.cache.l1_state == "on", timeout=5)
    assert t.listener.losses == 0
    assert await t.cache.get("k") == "v"
    assert t.cache.stats().l1_hits >= 1


async def test_flushdb_drops_the_whole_l1(
    tiered: Callable[..., Any], redis_server_factory: Factory
) -> None:
    server = redis_server_factory()
    t = await tiered(server.url)
    await t.cache.set_many({"a": 1, "b": 2})
    await t.listener.sync()
    assert await t.cache.get_many(["a", "b"]) == {"a": 1, "b": 2}
    assert len(t.cache.l1) == 2
    server.cli("FLUSHDB")  # a private server: flushing it is fine
    await eventually(lambda: len(t.cache.l1) == 0)
    assert await t.cache.get_many(["a", "b"]) == {}


async def test_fallback_outage_keeps_no_stale_resurrection(
    tiered: Callable[..., Any], redis_server_factory: Factory
) -> None:
    server = redis_server_factory(appendonly=True, appendfsync="always")
    t = await tiered(server.url)
    await t.cache.set_many({"gone": "old", "kept": "old"})
    await t.listener.sync()
    assert await t.cache.get_many(["gone", "kept"]) == {"gone": "old", "kept": "old"}
    server.kill()
    # The first call that meets the outage is answered by the fallback, never by L1.
    assert await t.cache.delete("gone") is False  # memory is cold: it did not hold it
    assert t.cache.mode == "fallback"
    assert len(t.cache.l1) == 0
    assert await t.cache.get("gone") is None  # not L1's "old"
    assert await t.cache.get("kept") is None  # cold fallback, as FallbackCache documents
    await t.cache.set("new", "outage")
    server.start()

    async def recovered() -> bool:
        await t.cache.get("x")  # calls drive the fallback's recovery
        return t.cache.mode == "redis"

    await eventually(recovered, timeout=10)
    await eventually(lambda: t.cache.l1_state == "on", timeout=10)
    assert await t.cache.get("gone") is None  # replay deleted it in Redis too
    assert await t.cache.get("kept") == "old"
    assert await t.cache.get("new") == "outage"


async def test_plain_redis_l2_errors_reach_the_caller(
    tiered: Callable[..., Any], redis_server_factory: Factory
) -> None:
    from redkeep.errors import BackendError

    server = redis_server_factory()
    t = await tiered(server.url, fallback=False)
    await t.cache.set("k", 1)
    server.kill()
    with pytest.raises(BackendError):
        await t.cache.get("k")
    await eventually(lambda: t.cache.l1_state == "bypassed")
    assert len(t.cache.l1) == 0


async def test_channel_logs_and_status_never_show_the_password(
    tiered: Callable[..., Any], redis_server_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    password = "tiered-s3cret-pw"
    server = redis_server_factory(acl_user=("alice", password))
    caplog.set_level(logging.DEBUG, logger="redkeep")
    t = await tiered(server.url)
    await t.cache.set("k", 1)
    assert kill_tracking(server) == 1
    await eventually(lambda: t.listener.losses == 1)
    server.kill()
    await eventually(lambda: t.listener.losses >= 2, timeout=10)
    status = t.cache.l1_status()
    assert status["state"] == "bypassed"
    assert "reason" in status
    assert password not in str(status)
    assert password not in caplog.text
    assert "lost" in caplog.text


async def test_tracking_refused_leaves_l1_bypassed_with_a_reason(
    tiered: Callable[..., Any], redis_server_factory: Factory, prefix: str
) -> None:
    server = redis_server_factory(extra_args=["--rename-command", "CLIENT", ""])
    t = Tiered(server.url, prefix)
    try:
        await t.cache.set("k", 1)
        assert await t.cache.get("k") == 1  # still a working cache, from Redis
        await eventually(lambda: t.listener.last_error is not None)
        assert t.cache.l1_state == "bypassed"
        assert "refused client tracking" in t.cache.l1_status()["reason"]
        assert len(t.cache.l1) == 0
    finally:
        await t.close()


async def test_documented_acl_user_can_run_the_l1(redis_server_factory: Factory) -> None:
    from tests.test_docs import _documented_acl_rule

    server = redis_server_factory()
    args = [a.replace("CHANGE-ME", "acl-l1-pw") for a in _documented_acl_rule()]
    server.cli("ACL", *args)
    url = f"redis://redkeep:acl-l1-pw@127.0.0.1:{server.port}/0"
    t = Tiered(url, "redkeep")  # the prefix the documented rule allows (a private server)
    try:
        await wait_until_fresh(t.listener)  # tracking and the subscription were allowed
        await t.cache.set("k", 1)
        await t.listener.sync()
        assert await t.cache.get("k") == 1
        assert await t.cache.get("k") == 1
        assert t.cache.stats().l1_hits == 1
    finally:
        await t.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
async def test_invalidation_channel_over_tls(
    tiered: Callable[..., Any], redis_server_factory: Factory, tmp_path: Path
) -> None:
    from tests.support.tls import make_cert

    cert, key, ca = make_cert(tmp_path)
    server = redis_server_factory(tls=(cert, key, ca))
    url = f"{server.tls_url}?ssl_ca_certs={ca}"  # the same URL options as the main client
    reader = await tiered(url)
    writer = await tiered(url)
    await writer.cache.set("k", "v1")
    await reader.listener.sync()
    assert await reader.cache.get("k") == "v1"
    assert await reader.cache.get("k") == "v1"
    assert reader.cache.stats().l1_hits == 1
    await writer.cache.set("k", "v2")
    await eventually(lambda: reader.cache.l1.get("k") is None)
    assert await reader.cache.get("k") == "v2"
