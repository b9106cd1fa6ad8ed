"""Cluster specifics of the reference transport (RedisPyClient): scripts on every primary,
slot spreading, SCRIPT FLUSH."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redkeep.errors import BackendResponseError
from redkeep.redis.base import Script
from redkeep.redis.redispy import RedisPyClient

pytestmark = pytest.mark.cluster


@pytest.fixture
async def cluster_client(redis_cluster: Any) -> Any:
    client = RedisPyClient(redis_cluster.url, cluster=True)
    yield client
    await client.close()


async def test_script_load_reaches_every_primary(
    cluster_client: Any, redis_cluster: Any, prefix: str
) -> None:
    script = Script("probe", f"-- KEYS: none ({prefix})\nreturn 1")
    assert await cluster_client.script_load(script) == script.sha
    for server in redis_cluster.servers:
        assert server.cli("SCRIPT", "EXISTS", script.sha).strip() == "1"


async def test_keys_spread_over_all_primaries_and_multi_key_ops_work(
    cluster_client: Any, redis_cluster: Any, prefix: str
) -> None:
    names = [f"{prefix}:spread:{i}" for i in range(60)]
    await cluster_client.mset({k: k for k in names})
    counts = [
        int(s.cli("EVAL", f"return #redis.call('KEYS', '{prefix}:spread:*')", "0").strip())
        for s in redis_cluster.servers
    ]
    assert all(c > 0 for c in counts) and sum(counts) == 60
    assert await cluster_client.mget(names) == names
    assert await cluster_client.unlink(*names) == 60


async def test_evalsha_reloads_after_script_flush_on_a_node(
    cluster_client: Any, redis_cluster: Any, prefix: str
) -> None:
    script = Script("echo", f"-- KEYS[1]: key ({prefix})\nreturn KEYS[1]")
    key = f"{prefix}:echo"
    assert await cluster_client.evalsha(script, [key], []) == key
    for server in redis_cluster.servers:
        server.cli("SCRIPT", "FLUSH")
    assert await cluster_client.evalsha(script, [key], []) == key


async def test_raw_multi_key_command_across_slots_is_crossslot_error(
    cluster_client: Any, prefix: str
) -> None:
    with pytest.raises(BackendResponseError, match="CROSSSLOT"):
        await cluster_client.execute("MGET", f"{prefix}:a", f"{prefix}:b")
    tag = f"{{{prefix}}}"
    assert await cluster_client.execute("MGET", f"{tag}:a", f"{tag}:b") == [None, None]


def _connected_clients(server: Any) -> int:
    for line in server.cli("INFO", "clients").splitlines():
        if line.startswith("connected_clients:"):
            return int(line.split(":", 1)[1])
    raise AssertionError("INFO clients has no connected_clients")


async def test_many_concurrent_commands_on_fresh_client_wait_for_a_connection(
    redis_cluster: Any, prefix: str
) -> None:
    """Regression: redis-py's cluster pools raise MaxConnectionsError instead of waiting, and a
    fresh client's first concurrent commands were misrouted (MOVED) until redis-py reset every
    connection, failing others with AttributeError ('NoneType' ... 'writelines')."""
    before = [_connected_clients(s) for s in redis_cluster.servers]
    client = RedisPyClient(redis_cluster.url, cluster=True, max_connections=10)
    script = Script(
        "conc", f"-- KEYS[1]: key, ARGV[1]: suffix ({prefix})\nreturn KEYS[1] .. ARGV[1]"
    )
    keys = [f"{prefix}:conc:{i}" for i in range(200)]

    async def one(i: int) -> Any:
        key = keys[i]
        if i % 3 == 0:
            return await client.set(key, str(i))
        if i % 3 == 1:
            return await client.get(key)
        return await client.evalsha(script, [key], ["!"])

    try:
        results = await asyncio.gather(*(one(i) for i in range(200)), return_exceptions=True)
        during = [_connected_clients(s) for s in redis_cluster.servers]
        errors = [r for r in results if isinstance(r, BaseException)]
        assert errors == []
        for i, result in enumerate(results):
            expected = {0: True, 1: None, 2: f"{keys[i]}!"}[i % 3]
            assert result == expected, (i, result)
        # the bound holds per node: at most max_connections (+1 bootstrap connection) each
        assert all(d - b <= 11 for b, d in zip(before, during, strict=True)), (before, during)
        assert await client.mget(keys[:6:3]) == ["0", "3"]
    finally:
        await client.close()


async def test_a_large_batch_never_exhausts_the_pool_by_itself(
    redis_cluster: Any, prefix: str
) -> None:
    """Regression: a cluster batch started one task per hash slot at once, each queueing for a
    pool slot with the command timeout as its deadline; with many keys (1,200 in the cache
    contract test, on a loaded machine) the last ones timed out with "pool exhausted" though
    the batch was progressing. A batch now runs at most one command per pool connection."""
    client = RedisPyClient(redis_cluster.url, cluster=True, max_connections=2, command_timeout=0.2)
    try:
        names = [f"{prefix}:batch:{i}" for i in range(3000)]  # ~3000 slots, 2 connections
        await client.mset({k: "v" for k in names})
        assert await client.mget(names[:5] + names[-5:]) == ["v"] * 10
    finally:
        await client.close()
