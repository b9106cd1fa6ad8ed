"""Cluster specifics of RespClient: scripts on every primary, slot spreading, SCRIPT FLUSH."""

from __future__ import annotations

from typing import Any

import pytest

from redkeep.errors import BackendResponseError
from redkeep.redis.base import Script
from redkeep.redis.resp import RespClient

pytestmark = pytest.mark.cluster


@pytest.fixture
async def cluster_client(redis_cluster: Any) -> Any:
    client = RespClient(redis_cluster.url, cluster=True)
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
