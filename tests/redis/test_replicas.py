"""Writes acknowledged by replicas: ``evalsha(..., replicas=N)`` runs EVALSHA then ``WAIT N``
on a connection of its own, on both RESP transports, against a private primary and replica."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.support.redis_server import RedisServer

from redkeep.errors import BackendResponseError, ReplicationTimeout
from redkeep.redis.base import Script
from redkeep.redis.mux import MuxClient
from redkeep.redis.redispy import RedisPyClient

PUT = Script("put", "-- KEYS[1]: key; ARGV[1]: value\nredis.call('SET', KEYS[1], ARGV[1]) return 7")


@pytest.fixture(params=[MuxClient, RedisPyClient], ids=["mux", "redis-py"])
async def client(
    request: pytest.FixtureRequest, replicated_redis: tuple[RedisServer, RedisServer]
) -> AsyncIterator[Any]:
    c = request.param(replicated_redis[0].url, command_timeout=2)
    try:
        yield c
    finally:
        await c.close()


async def test_acknowledged_write_is_on_the_replica_when_it_returns(
    client: Any, replicated_redis: tuple[RedisServer, RedisServer]
) -> None:
    _, replica = replicated_redis
    for i in range(20):
        assert await client.evalsha(PUT, [f"k{i}"], [f"v{i}"], replicas=1) == 7
        assert replica.cli("GET", f"k{i}").strip() == f"v{i}"


async def test_too_few_replicas_is_a_replication_timeout(
    client: Any, replicated_redis: tuple[RedisServer, RedisServer]
) -> None:
    primary, _ = replicated_redis
    start = time.monotonic()
    with pytest.raises(ReplicationTimeout, match="1 of 2 replica") as info:
        await client.evalsha(PUT, ["k"], ["v"], replicas=2, replica_timeout=0.3)
    assert 0.25 < time.monotonic() - start < 1.5
    assert (info.value.acknowledged, info.value.required) == (1, 2)
    assert primary.cli("GET", "k").strip() == "v"  # the script ran: the job id makes a retry safe


async def test_a_frozen_replica_times_out_the_wait(
    client: Any, replicated_redis: tuple[RedisServer, RedisServer]
) -> None:
    _, replica = replicated_redis
    await client.evalsha(PUT, ["warm"], ["v"], replicas=1)
    replica.pause()
    try:
        with pytest.raises(ReplicationTimeout, match="0 of 1"):
            await client.evalsha(PUT, ["k"], ["v"], replicas=1, replica_timeout=0.3)
    finally:
        replica.resume()


async def test_waiting_never_blocks_the_shared_connection(client: Any) -> None:
    await client.set("fast", "1")
    waiting = asyncio.create_task(
        client.evalsha(PUT, ["k"], ["v"], replicas=2, replica_timeout=3.0)
    )
    await asyncio.sleep(0.1)
    start = time.monotonic()
    for _ in range(20):
        assert await client.get("fast") == "1"
    assert time.monotonic() - start < 2.0  # queued behind the WAIT they would take 2.9 s
    assert not waiting.done()
    with pytest.raises(ReplicationTimeout):
        await waiting


async def test_script_errors_come_first(client: Any) -> None:
    bad = Script("bad", "-- KEYS: none\nreturn redis.error_reply('NOPE bad input')")
    with pytest.raises(BackendResponseError, match="NOPE"):
        await client.evalsha(bad, [], [], replicas=1)
