"""FallbackCache against a private redis-server that is killed, paused and restarted.

The server runs with an fsync-always AOF, so after a restart Redis holds its *old* values: the
stale-resurrection scenario is real, not simulated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from redkeep.cache import FallbackCache, MemoryCache, RedisCache
from redkeep.errors import BackendResponseError, BackendUnavailable
from redkeep.redis.mux import MuxClient
from redkeep.resilience import CircuitBreaker
from tests.support.redis_server import RedisServer


@pytest.fixture
def server(redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    return redis_server_factory(appendonly=True, appendfsync="always")


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[MuxClient]:
    c = MuxClient(server.url, retry_attempts=0, connect_timeout=0.5, command_timeout=0.5)
    yield c
    await c.close()


def make(client: MuxClient, prefix: str, **options: Any) -> FallbackCache:
    breaker = CircuitBreaker("test", failure_threshold=1, window=10, reset_timeout=0.2)
    return FallbackCache(RedisCache(client, "fb", key_prefix=prefix), breaker=breaker, **options)


async def wait_for_redis(cache: FallbackCache, timeout: float = 15.0) -> None:
    """Keep calling (each call may start recovery) until the cache is back on Redis."""
    deadline = time.monotonic() + timeout
    while cache.mode != "redis":
        assert time.monotonic() < deadline, "cache did not return to Redis"
        await cache.get("__poke__")
        await asyncio.sleep(0.05)


async def test_outage_answers_without_errors_and_recovers(
    server: RedisServer, client: MuxClient, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="redkeep.cache")
    cache = make(client, prefix)
    await cache.set("before", "v")
    assert cache.mode == "redis"
    server.kill()
    # Every operation keeps answering from memory; none raises.
    await cache.set("k", 1)
    assert cache.mode == "fallback"
    for i in range(100):
        await cache.set(f"o{i}", i, ttl=60)
        assert await cache.get(f"o{i}") == i
        assert await cache.incr("n") == i + 1
    assert await cache.get("before") is None  # memory starts cold
    assert await cache.get_many(["k", "o1"]) == {"k": 1, "o1": 1}
    assert await cache.add("k", 2) is False
    assert await cache.has("k")
    assert await cache.touch("k", 30) is True
    assert await cache.delete_many(["o0"]) == 1
    assert await cache.get_or_set("g", lambda: "computed") == "computed"
    stats = cache.stats()
    assert stats.fallback_reads > 100 and stats.fallback_writes > 200
    assert stats.errors >= 1

    server.start()
    await wait_for_redis(cache)
    # Back on Redis: outage writes were replayed, pre-outage data is served again.
    assert await cache.get("before") == "v"
    assert await cache.get("k") == 1
    assert await cache.get("n") == 100
    assert await cache.get("g") == "computed"
    assert await cache.get("o0") is None
    assert await client.get(f"{prefix}:cache:fb:o5") == "5"
    ttl = await cache.ttl("o5")
    assert ttl is not None and ttl <= 60
    assert cache.pending_keys == 0

    warnings = [r for r in caplog.records if r.name == "redkeep.cache" and r.levelno >= 30]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]  # one per state change
    assert "unavailable" in warnings[0].getMessage()
    assert "back on Redis" in warnings[1].getMessage()


async def test_no_stale_resurrection(server: RedisServer, client: MuxClient, prefix: str) -> None:
    cache = make(client, prefix)
    await cache.set_many({"deleted": "old", "overwritten": "old", "untouched": "old"})
    await cache.set("expiring", "old")
    server.kill()
    assert await cache.delete("deleted") is False  # memory never held it; still recorded
    await cache.set("overwritten", "new")
    await cache.set("expiring", "short-lived", ttl=0.1)
    await cache.set("created", "new")
    assert cache.mode == "fallback"
    await asyncio.sleep(0.15)  # "expiring" expires in memory during the outage
    server.start()
    assert await client.get(f"{prefix}:cache:fb:deleted") is not None  # Redis has the old value
    await wait_for_redis(cache)
    assert await cache.get("deleted") is None
    assert await cache.get("overwritten") == "new"
    assert await cache.get("expiring") is None
    assert await cache.get("created") == "new"
    assert await cache.get("untouched") == "old"
    # A second outage starts from an empty memory, not from the first outage's values.
    server.kill()
    assert await cache.get("overwritten") is None
    assert cache.mode == "fallback"
    server.start()
    await wait_for_redis(cache)
    assert await cache.get("overwritten") == "new"


async def test_clear_and_overflow_invalidate_the_namespace(
    server: RedisServer, client: MuxClient, prefix: str
) -> None:
    cache = make(client, prefix, max_dirty_keys=3)
    await cache.set_many({f"old{i}": i for i in range(10)})
    server.kill()
    for i in range(5):  # more than max_dirty_keys
        await cache.set(f"new{i}", i)
    await cache.delete("old0")
    server.start()
    await wait_for_redis(cache)
    assert await cache.get_many([f"old{i}" for i in range(10)]) == {}
    assert await cache.get_many([f"new{i}" for i in range(5)]) == {f"new{i}": i for i in range(5)}

    server.kill()
    await cache.set("x", 1)  # enters fallback
    assert await cache.clear() == 1
    await cache.set("after-clear", 2)
    server.start()
    await wait_for_redis(cache)
    assert await cache.get_many(["x", "new1", "after-clear"]) == {"after-clear": 2}


async def test_paused_server_times_out_into_fallback(
    server: RedisServer, client: MuxClient, prefix: str
) -> None:
    cache = make(client, prefix)
    await cache.set("k", "v")
    server.pause()
    try:
        await cache.set("k", "during-pause")
        assert cache.mode == "fallback"
        assert await cache.get("k") == "during-pause"
    finally:
        server.resume()
    await wait_for_redis(cache)
    assert await cache.get("k") == "during-pause"


async def test_open_shared_breaker_routes_to_memory(
    server: RedisServer, client: MuxClient, prefix: str
) -> None:
    breaker = CircuitBreaker("shared", failure_threshold=1, reset_timeout=60)
    cache = FallbackCache(RedisCache(client, "fb", key_prefix=prefix), breaker=breaker)
    await cache.set("k", "redis")
    breaker.trip()  # e.g. another cache on the same client saw Redis fail
    await cache.set("k", "memory")
    assert cache.mode == "fallback"
    assert await client.get(f"{prefix}:cache:fb:k") == '"redis"'  # not sent to Redis
    breaker.reset()
    await wait_for_redis(cache)
    assert await cache.get("k") == "memory"


async def test_uses_given_memory_and_closes(client: MuxClient, prefix: str) -> None:
    memory = MemoryCache("fb", max_entries=2)
    cache = FallbackCache(RedisCache(client, "fb", key_prefix=prefix), memory)
    assert cache.fallback is memory
    await cache.close()


class PingCounter:
    def __init__(self) -> None:
        self.pings = 0

    def on_command(self, transport: str, command: str, seconds: float, error: str | None) -> None:
        if command.upper() == "PING":
            self.pings += 1


async def test_recovery_probes_are_paced_by_the_breaker(server: RedisServer, prefix: str) -> None:
    counter = PingCounter()
    client = MuxClient(
        server.url, retry_attempts=0, connect_timeout=0.5, command_timeout=0.5, observer=counter
    )
    try:
        breaker = CircuitBreaker("paced", failure_threshold=1, window=10, reset_timeout=0.5)
        cache = FallbackCache(RedisCache(client, "fb", key_prefix=prefix), breaker=breaker)
        await cache.set("k", 1)
        server.kill()
        start = time.monotonic()
        calls = 0
        while time.monotonic() - start < 1.2:
            await cache.set(f"k{calls}", calls)
            calls += 1
            await asyncio.sleep(0.002)
        assert calls > 100
        assert cache.mode == "fallback"
        assert 1 <= counter.pings <= 4, counter.pings  # one probe per reset_timeout, not per call
        await cache.close()
    finally:
        await client.close()


class CommandLog:
    """Records the name of every command the client ran, in completion order."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def on_command(self, transport: str, command: str, seconds: float, error: str | None) -> None:
        self.names.append(command.upper())


async def test_replay_under_write_load_takes_bounded_round_trips(
    server: RedisServer, prefix: str
) -> None:
    """20 writers keep dirtying 200 keys while Redis comes back: replay still ends, in at most
    ``replay_rounds + 1`` rounds of pipelined batches, and Redis ends with every key's last
    write (value or deletion), never the pre-outage value."""
    log = CommandLog()
    client = MuxClient(
        server.url, retry_attempts=0, connect_timeout=0.5, command_timeout=0.5, observer=log
    )
    writers, keys, batch = 20, 200, 64
    names = [f"k{i}" for i in range(keys)]
    breaker = CircuitBreaker("load", failure_threshold=1, window=10, reset_timeout=0.2)
    replay_commands: list[str] = []  # commands run from the restart until the breaker closed
    restarted_at = 0
    breaker.add_listener(
        lambda _name, _old, new: (
            replay_commands.extend(log.names[restarted_at:]) if new == "closed" else None
        )
    )
    cache = FallbackCache(
        RedisCache(client, "fb", key_prefix=prefix), breaker=breaker, replay_batch=batch
    )
    expected: dict[str, Any] = {}  # each key has one writer, so its last write is well defined
    stop = asyncio.Event()
    deadline = time.monotonic() + 20.0

    async def writer(w: int) -> None:
        mine = names[w::writers]
        n = 0
        while not stop.is_set() and n < 200_000 and time.monotonic() < deadline:
            key = mine[n % len(mine)]
            if n % 5 == 4:
                await cache.delete(key)
                expected.pop(key, None)
            else:
                value = f"w{w}-{n}"
                await cache.set(key, value, ttl=60 if n % 2 else None)
                expected[key] = value
            n += 1
            await asyncio.sleep(0)

    try:
        await cache.set_many({k: "old" for k in names})
        server.kill()
        tasks = [asyncio.create_task(writer(w)) for w in range(writers)]
        await asyncio.sleep(0.3)
        assert cache.mode == "fallback"
        restarted_at = len(log.names)
        server.start()
        while cache.mode != "redis":
            assert time.monotonic() < deadline, f"not back on Redis; {cache.pending_keys} pending"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # writers go on, now against Redis
        stop.set()
        await asyncio.gather(*tasks)

        assert replay_commands, "the breaker did not close on recovery"
        pipelines = replay_commands.count("PIPELINE")
        # Only probes and pipelined batches: no per-key SET/UNLINK round trips.
        assert set(replay_commands) <= {"PING", "PIPELINE"}, set(replay_commands)
        rounds_bound = cache.replay_rounds + 1
        assert 1 <= pipelines <= rounds_bound * -(-keys // batch), pipelines
        assert cache.pending_keys == 0
        stored = await cache.primary.get_many(names)
        assert stored == expected
        assert "old" not in stored.values()
    finally:
        stop.set()
        await cache.close()
        await client.close()


class FailingPipelines:
    """Fault injection (a real server cannot fail one pipeline on demand): wraps a real client;
    the next ``failures`` pipelines either raise a transport error or, with ``reply_error``, run
    for real but report an error reply in their first slot (e.g. an OOM refusal)."""

    def __init__(self, inner: MuxClient, failures: int, *, reply_error: bool) -> None:
        self.inner = inner
        self.failures = failures
        self.reply_error = reply_error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def pipeline(self, commands: Any, *, transaction: bool = False) -> list[Any]:
        if self.failures <= 0:
            return await self.inner.pipeline(commands, transaction=transaction)
        self.failures -= 1
        if not self.reply_error:
            raise BackendUnavailable("injected: connection lost during replay")
        replies = await self.inner.pipeline(commands, transaction=transaction)
        replies[0] = BackendResponseError("OOM injected: command not allowed")
        return replies


@pytest.mark.parametrize("reply_error", [False, True], ids=["transport-error", "error-reply"])
async def test_failed_replay_keeps_the_keys_for_the_next_attempt(
    client: MuxClient, prefix: str, reply_error: bool
) -> None:
    failing = FailingPipelines(client, 0, reply_error=reply_error)
    breaker = CircuitBreaker("replay-fails", failure_threshold=1, window=10, reset_timeout=0.2)
    cache = FallbackCache(
        RedisCache(failing, "fb", key_prefix=prefix),  # type: ignore[arg-type]
        breaker=breaker,
        replay_batch=2,
    )
    await cache.set_many({f"k{i}": "old" for i in range(5)})
    breaker.trip()  # fallback without killing Redis, so the replay itself is what fails
    for i in range(5):
        await cache.set(f"k{i}", f"new{i}")
    await cache.delete("k0")
    assert cache.mode == "fallback" and cache.pending_keys == 5
    failing.failures = 1
    breaker.reset()
    await cache.get("__poke__")  # starts recovery: PING passes, the first batch fails
    for _ in range(200):  # the failed attempt opens the breaker (threshold 1)
        if breaker.state == "open":
            break
        await asyncio.sleep(0.01)
    assert failing.failures == 0
    assert cache.mode == "fallback"
    assert cache.pending_keys == 5  # nothing was dropped by the failed attempt
    await wait_for_redis(cache)
    expected = {f"k{i}": f"new{i}" for i in range(1, 5)}
    assert await cache.primary.get_many([f"k{i}" for i in range(5)]) == expected
    await cache.close()
