"""MuxClient's multiplexed connection (redkeep.redis._multiplexer): sharing, ordering, faults.

All against real redis-server processes; the faults are real too (SIGSTOP, CLIENT KILL).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import redis.asyncio as aredis
from tests.support.redis_server import RedisServer

from redkeep.errors import BackendResponseError, BackendTimeout, BackendUnavailable
from redkeep.redis.mux import MuxClient

Factory = Callable[..., RedisServer]
KILL = ("CLIENT", "KILL", "SKIPME", "yes", "USER", "default")


async def _clients_named(admin: aredis.Redis, name: str) -> int:
    return sum(1 for c in await admin.client_list() if c.get("name") == name)


@pytest.mark.parametrize("spin", [0.0, 0.0002])
async def test_concurrent_callers_share_one_connection_and_get_their_own_replies(
    redis_server_factory: Factory, spin: float
) -> None:
    server = redis_server_factory()
    name = "rk-mux-shared"
    client = MuxClient(f"{server.url}?client_name={name}", spin=spin)
    admin = aredis.Redis.from_url(server.url, decode_responses=True)

    async def one(i: int) -> tuple[str | None, int, list[object]]:
        await client.set(f"k{i}", f"v{i}")
        got = await client.get(f"k{i}")
        n = await client.execute("INCRBY", "counter", i)
        batch = await client.pipeline([("GET", f"k{i}"), ("LPUSH", f"k{i}", "x")])
        return got, int(n), batch

    try:
        results = await asyncio.gather(*(one(i) for i in range(300)))
        for i, (got, _, batch) in enumerate(results):
            assert got == f"v{i}"
            assert batch[0] == f"v{i}"
            assert isinstance(batch[1], BackendResponseError) and "WRONGTYPE" in str(batch[1])
        assert await client.execute("GET", "counter") == str(sum(range(300)))
        assert await _clients_named(admin, name) == 1  # no pooled command ran: one connection
    finally:
        await client.close()
        await admin.aclose()


async def test_cancelled_caller_leaves_no_stale_reply(redis_server_factory: Factory) -> None:
    server = redis_server_factory()
    client = MuxClient(server.url)
    try:
        await client.set("a", "A")
        await client.set("b", "B")
        slow = asyncio.create_task(client.execute("EVAL", _BUSY_LUA, 0, "150"))
        await asyncio.sleep(0.02)
        queued = asyncio.create_task(client.get("a"))  # behind the slow script on the wire
        await asyncio.sleep(0.01)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert await queued == "A"
        assert await client.get("b") == "B"
    finally:
        await client.close()


_BUSY_LUA = """
local t = redis.call('TIME')
local stop = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1]) * 1000
repeat t = redis.call('TIME') until tonumber(t[1]) * 1000000 + tonumber(t[2]) >= stop
return 'done'
"""


async def test_frozen_server_times_out_then_the_connection_recovers(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory()
    client = MuxClient(server.url, command_timeout=0.4, retry_attempts=0)
    try:
        assert await client.set("k", "v")
        server.pause()
        start = time.perf_counter()
        results = await asyncio.gather(*(client.get("k") for _ in range(5)), return_exceptions=True)
        waited = time.perf_counter() - start
        assert all(isinstance(r, BackendTimeout) for r in results), results
        assert 0.3 < waited < 1.5
        server.resume()
        assert await client.get("k") == "v"  # a new connection
    finally:
        server.resume()
        await client.close()


async def test_lost_connection_fails_in_flight_without_retry_and_reconnects(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory()
    client = MuxClient(server.url, retry_attempts=0, command_timeout=5)
    try:
        await client.set("k", "v")
        server.pause()
        in_flight = asyncio.create_task(client.get("k"))
        await asyncio.sleep(0.05)
        server.kill()  # the in-flight command's connection is reset
        with pytest.raises(BackendUnavailable):
            await in_flight
        server.start()
        assert await client.set("k", "again")
        assert await client.get("k") == "again"
    finally:
        await client.close()


async def test_killed_connection_is_retried_transparently(redis_server_factory: Factory) -> None:
    server = redis_server_factory()
    client = MuxClient(server.url, retry_attempts=2, retry_base_delay=0.01)
    admin = aredis.Redis.from_url(server.url, decode_responses=True)
    try:
        await client.set("k", "v")
        for _ in range(3):
            assert int(await admin.execute_command(*KILL)) >= 1  # type: ignore[no-untyped-call]
            assert await client.get("k") == "v"
    finally:
        await client.close()
        await admin.aclose()


async def test_value_larger_than_the_socket_buffer_round_trips(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory()
    client = MuxClient(server.url, spin=0.0002)
    big = "x" * (12 * 1024 * 1024)
    try:
        writes = [client.set(f"big{i}", big + str(i)) for i in range(3)]
        assert await asyncio.gather(*writes) == [True] * 3
        assert await client.get("big2") == big + "2"
        assert await client.execute("STRLEN", "big0") == len(big) + 1
    finally:
        await client.close()


@pytest.mark.parametrize("auth", ["requirepass", "acl_user"])
async def test_handshake_selects_db_and_authenticates(
    redis_server_factory: Factory, auth: str
) -> None:
    opts = {"requirepass": "s3cret-mux"} if auth == "requirepass" else {"acl_user": ("app", "pw")}
    server = redis_server_factory(**opts)
    client = MuxClient(server.url.rsplit("/", 1)[0] + "/4")
    try:
        assert await client.set("in-db-4", "1")
        admin = aredis.Redis.from_url(server.url.rsplit("/", 1)[0] + "/4", decode_responses=True)
        assert await admin.get("in-db-4") == "1"
        await admin.aclose()
    finally:
        await client.close()


async def test_closed_client_refuses_and_unknown_server_is_unavailable(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory()
    client = MuxClient(server.url)
    await client.set("k", "v")
    await client.close()
    with pytest.raises(BackendUnavailable):
        await client.get("k")
    port = server.port
    server.stop()
    down = MuxClient(f"redis://127.0.0.1:{port}/0", retry_attempts=1, retry_base_delay=0.01)
    try:
        with pytest.raises(BackendUnavailable):
            await down.get("k")
    finally:
        await down.close()


@pytest.mark.parametrize("spin", [0.0, 0.0002])
def test_client_survives_a_new_event_loop(redis_url: str, prefix: str, spin: float) -> None:
    """A client used from a second ``asyncio.run()`` reconnects instead of failing."""
    client = MuxClient(redis_url, command_timeout=2, spin=spin)

    async def roundtrip(value: str) -> str | None:
        await client.set(f"{prefix}:loop", value)
        return await client.get(f"{prefix}:loop")

    assert asyncio.run(roundtrip("first")) == "first"
    assert asyncio.run(roundtrip("second")) == "second"
    asyncio.run(client.close())


async def test_blocking_pops_get_connections_of_their_own_and_reuse_them(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory()
    name = "lanes-test"
    client = MuxClient(f"{server.url}?client_name={name}")
    admin = aredis.Redis(host="127.0.0.1", port=server.port)
    try:
        await client.set("warm", "1")  # the shared connection
        pops = [asyncio.create_task(client.bzpopmin([f"z{i}"], 1.0)) for i in range(2)]
        await asyncio.sleep(0.05)
        assert await client.get("warm") == "1"  # not stuck behind the blocked pops
        await client.zadd("z0", {"a": 1})
        await client.zadd("z1", {"b": 2})
        assert await asyncio.gather(*pops) == [("z0", "a", 1.0), ("z1", "b", 2.0)]
        assert await _clients_named(admin, name) == 3  # shared + one per concurrent pop
        for _ in range(3):  # sequential pops reuse a lane
            await client.zadd("z0", {"c": 3})
            assert await client.bzpopmin(["z0"], 1.0) == ("z0", "c", 3.0)
        assert await _clients_named(admin, name) == 3
        cancelled = asyncio.create_task(client.bzpopmin(["z9"], 1.0))
        await asyncio.sleep(0.05)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await client.zadd("z9", {"late": 9})  # the server may still hold the cancelled pop...
        await asyncio.sleep(0.05)
        await client.zadd("z9", {"next": 10})
        popped = await client.bzpopmin(["z9"], 1.0)  # ...so its lane is not reused
        assert popped is not None and popped[1] in ("late", "next")
    finally:
        await client.close()
        await admin.aclose()


async def _ticks_during_slow_reply(client: MuxClient) -> int:
    """Ticks of a 1 ms ticker task while the client waits 250 ms for a reply."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await asyncio.sleep(0.005)
        before = ticks
        assert await client.execute("EVAL", _BUSY_LUA, 0, "250") == "done"
        return ticks - before
    finally:
        task.cancel()


async def test_spin_only_while_keeps_the_loop_free_for_other_tasks(
    redis_server_factory: Factory,
) -> None:
    # A spinning caller holds the event loop while it polls its socket; a worker lets its
    # client spin only while no handler runs. Measured with a ticker task and a slow reply.
    # The spin budget (30 s) outlasts the reply however loaded the machine is (a spin that
    # runs out parks, and the ticker runs); a parked wait of 250 ms lets a 1 ms ticker tick
    # far more than 15 times even on a busy CPU.
    server = redis_server_factory()
    client = MuxClient(server.url, spin=30.0, command_timeout=10)
    try:
        await client.set("warm", "1")
        assert await _ticks_during_slow_reply(client) <= 3  # spinning held the loop
        busy = False
        lift_other = client.spin_only_while(lambda: True)
        lift_busy = client.spin_only_while(lambda: not busy)  # conditions must all hold
        busy = True
        assert await _ticks_during_slow_reply(client) >= 15  # parked: the ticker kept running
        busy = False
        assert await _ticks_during_slow_reply(client) <= 3
        busy = True
        lift_busy()  # e.g. that worker stopped: the other condition alone decides again
        assert await _ticks_during_slow_reply(client) <= 3
        lift_other()
        lift_other()  # lifting twice is harmless
    finally:
        await client.close()
