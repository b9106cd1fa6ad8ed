"""No double effects, transport side: what each RESP transport sends again after a lost reply.

A :class:`~tests.support.proxy.FaultProxy` between the client and a private redis-server cuts
the connection after the server ran a command and before its reply reaches the client (or,
with ``before_server``, instead of forwarding it). Counting on the server then shows exactly
how often each command ran.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from tests.support.proxy import FaultProxy
from tests.support.redis_server import RedisServer

from redkeep.errors import BackendResponseError, OutcomeUnknown
from redkeep.redis.base import Script
from redkeep.redis.mux import MuxClient
from redkeep.redis.policy import changes_state, may_resend
from redkeep.redis.redispy import RedisPyClient

Factory = Callable[..., RedisServer]

COUNT = Script("count", "-- KEYS[1]: counter\nreturn redis.call('INCR', KEYS[1])")
MARK = Script(
    "mark",
    "-- @idempotent\n-- KEYS[1]: a set; ARGV[1]: member\n"
    "redis.call('SADD', KEYS[1], ARGV[1])\nreturn redis.call('SCARD', KEYS[1])",
    idempotent=True,
)


@pytest.fixture
def server(redis_server_factory: Factory) -> RedisServer:
    return redis_server_factory()


@pytest.fixture
def proxy(server: RedisServer) -> Iterator[FaultProxy]:
    with FaultProxy(server.port) as p:
        yield p


@pytest.fixture(params=["mux", "redis-py"])
async def client(request: pytest.FixtureRequest, proxy: FaultProxy) -> AsyncIterator[Any]:
    cls = MuxClient if request.param == "mux" else RedisPyClient
    c = cls(proxy.url(), retry_attempts=3, retry_base_delay=0.01, command_timeout=2)
    await c.ping()  # connected: a fault from now on hits a written command
    try:
        yield c
    finally:
        await c.close()


def _get(server: RedisServer, *args: str) -> str:
    return server.cli(*args).strip()


async def test_lost_reply_of_a_counter_is_reported_not_resent(
    client: Any, proxy: FaultProxy, server: RedisServer
) -> None:
    proxy.drop_reply(command="INCRBY")
    with pytest.raises(OutcomeUnknown, match="may have run"):
        await client.incrby("n")
    assert proxy.dropped == [("INCRBY", True)]
    assert _get(server, "GET", "n") == "1"  # ran once, never twice
    assert await client.incrby("n") == 2  # the client reconnects by itself


async def test_lost_reply_of_a_non_idempotent_script_is_reported(
    client: Any, proxy: FaultProxy, server: RedisServer
) -> None:
    await client.script_load(COUNT)
    proxy.drop_reply(command="EVALSHA")
    with pytest.raises(OutcomeUnknown):
        await client.evalsha(COUNT, ["n"], [])
    assert _get(server, "GET", "n") == "1"


async def test_lost_reply_of_an_idempotent_script_is_resent(
    client: Any, proxy: FaultProxy, server: RedisServer
) -> None:
    assert MARK.idempotent
    await client.script_load(MARK)
    proxy.drop_reply(command="EVALSHA")
    assert await client.evalsha(MARK, ["s"], ["a"]) == 1
    assert proxy.dropped == [("EVALSHA", True)]
    assert _get(server, "SCARD", "s") == "1"


@pytest.mark.parametrize("command", ["GET", "SET", "HSET", "ZADD", "DEL"])
async def test_lost_reply_of_an_idempotent_command_is_resent(
    client: Any, proxy: FaultProxy, server: RedisServer, command: str
) -> None:
    await client.set("k", "v")
    calls = {
        "GET": lambda: client.get("k"),
        "SET": lambda: client.set("k", "w", px=60_000),
        "HSET": lambda: client.hset("h", {"f": "v"}),
        "ZADD": lambda: client.zadd("z", {"m": 1}),
        "DEL": lambda: client.delete("k"),
    }
    proxy.drop_reply(command=command)
    await calls[command]()
    assert proxy.dropped == [(command, True)]
    assert proxy.armed == 0


async def test_lost_reply_of_set_nx_is_reported(
    client: Any, proxy: FaultProxy, server: RedisServer
) -> None:
    proxy.drop_reply(command="SET")
    with pytest.raises(OutcomeUnknown):  # a re-send would say "someone else holds it"
        await client.set("lock", "me", nx=True, px=60_000)
    assert _get(server, "GET", "lock") == "me"


async def test_lost_request_is_not_guessed_either(
    client: Any, proxy: FaultProxy, server: RedisServer
) -> None:
    # written by the client, never seen by the server: the client cannot tell the difference
    proxy.drop_reply(command="INCRBY", before_server=True)
    with pytest.raises(OutcomeUnknown):
        await client.incrby("n")
    assert _get(server, "EXISTS", "n") == "0"


async def test_pipeline_is_resent_only_when_every_command_may_be(
    client: Any, proxy: FaultProxy, server: RedisServer
) -> None:
    proxy.drop_reply(command="GET")
    assert await client.pipeline([("SET", "a", "1"), ("GET", "a")]) == ["OK", "1"]
    proxy.drop_reply(command="GET")
    with pytest.raises(OutcomeUnknown):
        await client.pipeline([("INCR", "c"), ("GET", "a")])
    assert _get(server, "GET", "c") == "1"


async def test_refused_connection_is_retried_for_any_command(
    redis_server_factory: Factory,
) -> None:
    # never written: even INCR may be sent again once the server is back
    server = redis_server_factory()
    port = server.port
    for cls in (MuxClient, RedisPyClient):
        client = cls(
            f"redis://127.0.0.1:{port}/0",
            retry_attempts=8,
            retry_base_delay=0.05,
            retry_max_delay=0.3,
        )
        try:
            await client.ping()
            server.kill()
            loop = asyncio.get_running_loop()
            restart = loop.run_in_executor(None, lambda: (time.sleep(0.3), server.start()))
            await asyncio.sleep(0.05)  # the client has seen the connection go
            assert await client.incrby(f"n-{cls.__name__}") == 1
            await restart
        finally:
            await client.close()


@pytest.mark.parametrize("cls", [MuxClient, RedisPyClient])
async def test_state_changing_commands_are_refused_before_sending(
    cls: type, server: RedisServer
) -> None:
    client = cls(f"redis://127.0.0.1:{server.port}/0?client_name=rk-state")
    try:
        await client.set("k", "db0")
        for command in [
            ("SELECT", 1),
            ("CLIENT", "SETNAME", "other"),
            ("CLIENT", "TRACKING", "on"),
            ("MULTI",),
            ("SUBSCRIBE", "ch"),
            ("WATCH", "k"),
            ("HELLO", 3),
        ]:
            with pytest.raises(BackendResponseError, match="changes the state"):
                await client.execute(*command)
            with pytest.raises(BackendResponseError, match="changes the state"):
                await client.pipeline([("GET", "k"), command])
        assert await client.execute("CLIENT", "GETNAME") == "rk-state"
        assert await client.get("k") == "db0"
        replies = await client.pipeline([("INCR", "t"), ("INCR", "t")], transaction=True)
        assert replies == [1, 2]
        with pytest.raises(BackendResponseError, match=r"EXECABORT|unknown command"):
            await client.pipeline([("INCR", "t"), ("NOSUCHCOMMAND",)], transaction=True)
        assert await client.pipeline([("INCR", "t")], transaction=True) == [3]
        assert await client.get("k") == "db0"  # nothing left in a transaction
        info = [line for line in server.cli("CLIENT", "LIST").splitlines() if "rk-state" in line]
        assert info and all("db=0" in line and "flags=N" in line for line in info)
        assert "cmdstat_select" not in server.cli("INFO", "commandstats")
    finally:
        await client.close()


def test_resend_table() -> None:
    assert may_resend(("GET", "k")) and may_resend(("SET", "k", "v", "PX", 5))
    assert not may_resend(("SET", "k", "v", "NX")) and not may_resend(("SET", "k", "v", "GET"))
    assert may_resend(("ZADD", "z", "NX", "1", "m"))
    assert not may_resend(("ZADD", "z", "INCR", 1, "m"))
    for name in ("INCR", "INCRBY", "LPUSH", "RPUSH", "ZPOPMIN", "BZPOPMIN", "EVAL", "PUBLISH"):
        assert not may_resend((name, "k")), name
    assert may_resend(("EVALSHA", MARK.sha, 1, "s", "a"))
    assert not may_resend(("EVALSHA", COUNT.sha, 1, "n"))
    assert may_resend(("SCRIPT LOAD", "return 1")) and not may_resend(("SCRIPT", "FLUSH"))
    assert changes_state(("client", "setname", "x")) == "CLIENT SETNAME"
    assert changes_state(("CLIENT", "LIST")) is None and changes_state(("GET", "k")) is None
