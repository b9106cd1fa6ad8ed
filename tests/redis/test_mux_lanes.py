"""MuxClient's connections of their own (lanes): the max_connections bound, slot timeouts, reuse.

Lanes serve blocking commands, transactions and replicated writes; every other command shares
the one multiplexed connection (tests/redis/test_mux.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import redis.asyncio as aredis
from tests.support.redis_server import RedisServer

from redkeep.errors import BackendResponseError, BackendTimeout
from redkeep.redis.mux import MuxClient

Factory = Callable[..., RedisServer]


async def _named_clients(admin: aredis.Redis, name: str) -> int:
    clients = await admin.client_list()
    return sum(1 for c in clients if c.get("name") == name)


async def test_max_connections_bounds_the_standalone_pool(redis_server_factory: Factory) -> None:
    server = redis_server_factory()
    name = "rk-pool-bound"
    client = MuxClient(f"{server.url}?client_name={name}", max_connections=5, command_timeout=5)
    admin = aredis.Redis.from_url(server.url, decode_responses=True)
    seen: list[int] = []
    in_use: list[int] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            seen.append(await _named_clients(admin, name))
            in_use.append(client.pool_in_use or 0)
            await asyncio.sleep(0.005)

    async def one(i: int) -> str | None:
        # BLPOP on an empty list holds its connection for 20 ms, so callers must queue
        await client.execute("BLPOP", f"rk-pool:empty:{i}", "0.02")
        assert await client.set(f"rk-pool:{i}", str(i))
        return await client.get(f"rk-pool:{i}")

    try:
        sampler = asyncio.create_task(sample())
        results = await asyncio.gather(*(one(i) for i in range(200)))
        done.set()
        await sampler
        assert results == [str(i) for i in range(200)]
        assert max(seen) <= 5 + 1  # the pool's bound plus the one multiplexed connection
        assert max(in_use) == 5  # the bound was reached, not just respected
        assert await _named_clients(admin, name) <= 5 + 1
        assert client.pool_in_use == 0
    finally:
        await client.close()
        await admin.aclose()


async def test_waiting_longer_than_command_timeout_for_a_slot_is_backend_timeout(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory()
    client = MuxClient(server.url, max_connections=2, command_timeout=0.5)
    # Eight 0.35 s BLPOPs in one pipeline hold a connection ~2.8 s while no single reply
    # takes longer than the 0.5 s socket timeout (a loaded machine keeps a wide margin between
    # the 0.5 s timeout and the holders' end).
    hold = [("BLPOP", "rk-pool:never", "0.35")] * 8
    try:
        holders = [asyncio.create_task(client.pipeline(hold)) for _ in range(2)]
        await asyncio.sleep(0.1)
        assert client.pool_in_use == 2
        assert await client.set("rk-pool:k", "v")  # the multiplexed path needs no slot
        start = time.perf_counter()
        with pytest.raises(BackendTimeout, match="pool exhausted"):
            await client.execute("BLPOP", "rk-pool:other", "0.01")
        waited = time.perf_counter() - start
        assert 0.4 < waited < 2.0
        assert await asyncio.gather(*holders) == [[None] * 8] * 2
        assert await client.execute("BLPOP", "rk-pool:other", "0.01") is None  # slots free again
        assert await client.get("rk-pool:k") == "v"
    finally:
        await client.close()


async def test_cancelled_command_does_not_leave_a_stale_reply(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory()
    client = MuxClient(server.url, max_connections=1, command_timeout=2)
    try:
        await client.set("rk-pool:a", "A")
        task = asyncio.create_task(client.execute("BLPOP", "rk-pool:empty", "0.3"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.pool_in_use == 0
        await client.rpush("rk-pool:empty", "x")  # the BLPOP's late reply would say "x"
        assert await client.get("rk-pool:a") == "A"
        assert await client.lrange("rk-pool:empty", 0, -1) == ["x"]
    finally:
        await client.close()


async def test_idle_connection_closed_by_server_is_replaced_without_retry(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory()
    name = "rk-pool-killed"
    client = MuxClient(f"{server.url}?client_name={name}", retry_attempts=0)
    admin = aredis.Redis.from_url(server.url, decode_responses=True)
    try:
        assert await client.set("rk-pool:k", "v")
        kill = ("CLIENT", "KILL", "SKIPME", "yes", "USER", "default")
        killed = await admin.execute_command(*kill)  # type: ignore[no-untyped-call]
        assert int(killed) >= 1
        await asyncio.sleep(0.1)  # let the event loop see the EOF on the idle connection
        # with retries off, only the checkout's EOF check keeps this from failing
        assert await client.get("rk-pool:k") == "v"
    finally:
        await client.close()
        await admin.aclose()


async def test_pipeline_survives_a_server_side_close_and_keeps_errors_in_place(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory()
    client = MuxClient(server.url, retry_attempts=2, retry_base_delay=0.01)
    admin = aredis.Redis.from_url(server.url, decode_responses=True)
    commands = [("SET", "rk-pool:p", "1"), ("LPUSH", "rk-pool:p", "x"), ("INCR", "rk-pool:p")]
    try:
        assert await client.execute("PING") == "PONG"
        kill = ("CLIENT", "KILL", "SKIPME", "yes", "USER", "default")
        assert int(await admin.execute_command(*kill)) >= 1  # type: ignore[no-untyped-call]
        replies = await client.pipeline(commands)  # on the killed connection, or a new one
        assert replies[0] == "OK"
        assert isinstance(replies[1], BackendResponseError)
        assert "WRONGTYPE" in str(replies[1])
        assert replies[2] == 2
        assert client.pool_in_use == 0
    finally:
        await client.close()
        await admin.aclose()
