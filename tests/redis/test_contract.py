"""The RedisClient contract, run against every transport (any_client: mux, redis-py, cluster,
sentinel, upstash).

Keys come from the unique ``prefix``; on the cluster, keys without a shared hash tag land in
different slots, which is exactly what the multi-key methods must handle.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from redkeep.errors import BackendResponseError, BackendUnavailable
from redkeep.redis.base import Capabilities, RedisClient, Script


def keys(prefix: str, n: int) -> list[str]:
    return [f"{prefix}:k{i}" for i in range(n)]


async def test_implements_protocol_and_names_transport(any_client: Any) -> None:
    assert isinstance(any_client, RedisClient)
    assert any_client.transport in ("mux", "redis-py", "cluster", "sentinel", "upstash")
    caps = any_client.capabilities
    assert isinstance(caps, Capabilities)
    assert caps.cluster == (any_client.transport == "cluster")
    assert caps.blocking == (any_client.transport != "upstash")
    assert caps.pubsub == (any_client.transport != "upstash")


# -- strings -------------------------------------------------------------------------------------


async def test_get_set_roundtrip_and_missing(any_client: Any, prefix: str) -> None:
    assert await any_client.get(f"{prefix}:missing") is None
    assert await any_client.set(f"{prefix}:a", "value") is True
    assert await any_client.get(f"{prefix}:a") == "value"


async def test_non_ascii_text_roundtrips(any_client: Any, prefix: str) -> None:
    text = 'héllo ✓ 日本語 🚀 "quoted" \\ back\nslash \x00 nul'
    await any_client.set(f"{prefix}:u", text)
    assert await any_client.get(f"{prefix}:u") == text
    await any_client.mset({f"{prefix}:u2": text})
    assert await any_client.mget([f"{prefix}:u2"]) == [text]


async def test_set_px_sets_expiry(any_client: Any, prefix: str) -> None:
    await any_client.set(f"{prefix}:t", "v", px=60_000)
    ttl = await any_client.pttl(f"{prefix}:t")
    assert 50_000 < ttl <= 60_000


async def test_set_nx_only_writes_missing_keys(any_client: Any, prefix: str) -> None:
    assert await any_client.set(f"{prefix}:n", "first", nx=True) is True
    assert await any_client.set(f"{prefix}:n", "second", nx=True) is False
    assert await any_client.get(f"{prefix}:n") == "first"


async def test_set_xx_only_overwrites_existing_keys(any_client: Any, prefix: str) -> None:
    assert await any_client.set(f"{prefix}:x", "v", xx=True) is False
    assert await any_client.get(f"{prefix}:x") is None
    await any_client.set(f"{prefix}:x", "v")
    assert await any_client.set(f"{prefix}:x", "w", xx=True) is True
    assert await any_client.get(f"{prefix}:x") == "w"


async def test_set_rejects_nx_with_xx(any_client: Any, prefix: str) -> None:
    with pytest.raises(ValueError, match="mutually exclusive"):
        await any_client.set(f"{prefix}:both", "v", nx=True, xx=True)
    assert await any_client.get(f"{prefix}:both") is None


async def test_mget_mset_across_keys_keep_order(any_client: Any, prefix: str) -> None:
    names = keys(prefix, 20)
    await any_client.mset({k: f"v{i}" for i, k in enumerate(names)})
    got = await any_client.mget([*names, f"{prefix}:absent"])
    assert got == [*(f"v{i}" for i in range(20)), None]
    assert await any_client.mget([]) == []
    await any_client.mset({})


async def test_mset_with_px_expires_every_key(any_client: Any, prefix: str) -> None:
    names = keys(prefix, 5)
    await any_client.mset({k: "v" for k in names}, px=30_000)
    for k in names:
        assert 20_000 < await any_client.pttl(k) <= 30_000


async def test_incrby(any_client: Any, prefix: str) -> None:
    assert await any_client.incrby(f"{prefix}:c") == 1
    assert await any_client.incrby(f"{prefix}:c", 41) == 42
    assert await any_client.incrby(f"{prefix}:c", -2) == 40


async def test_delete_unlink_exists_count_keys(any_client: Any, prefix: str) -> None:
    names = keys(prefix, 6)
    await any_client.mset({k: "v" for k in names})
    assert await any_client.exists(*names, f"{prefix}:absent") == 6
    assert await any_client.delete(*names[:3], f"{prefix}:absent") == 3
    assert await any_client.unlink(*names[3:]) == 3
    assert await any_client.exists(*names) == 0
    assert await any_client.delete() == 0
    assert await any_client.exists() == 0


async def test_pexpire_and_pttl_states(any_client: Any, prefix: str) -> None:
    assert await any_client.pttl(f"{prefix}:none") == -2
    await any_client.set(f"{prefix}:p", "v")
    assert await any_client.pttl(f"{prefix}:p") == -1
    assert await any_client.pexpire(f"{prefix}:p", 5_000) is True
    assert 0 < await any_client.pttl(f"{prefix}:p") <= 5_000
    assert await any_client.pexpire(f"{prefix}:none", 5_000) is False


async def test_key_expires_after_px(any_client: Any, prefix: str) -> None:
    await any_client.set(f"{prefix}:e", "v", px=50)
    await asyncio.sleep(0.15)
    assert await any_client.get(f"{prefix}:e") is None


async def test_scan_iter_finds_exactly_matching_keys(any_client: Any, prefix: str) -> None:
    names = keys(prefix, 30)
    await any_client.mset({k: "v" for k in names})
    await any_client.set(f"{prefix}-other", "v")
    found = [k async for k in any_client.scan_iter(f"{prefix}:*", count=7)]
    assert sorted(set(found)) == sorted(names)


# -- hashes --------------------------------------------------------------------------------------


async def test_hash_operations(any_client: Any, prefix: str) -> None:
    h = f"{prefix}:h"
    assert await any_client.hset(h, {"a": "1", "b": 2, "c": 1.5, "d": "é"}) == 4
    assert await any_client.hset(h, {"a": "x"}) == 0
    assert await any_client.hget(h, "a") == "x"
    assert await any_client.hget(h, "zz") is None
    assert await any_client.hmget(h, ["b", "zz", "c"]) == ["2", None, "1.5"]
    assert await any_client.hgetall(h) == {"a": "x", "b": "2", "c": "1.5", "d": "é"}
    assert await any_client.hdel(h, "a", "zz") == 1
    assert await any_client.hgetall(f"{prefix}:nohash") == {}
    assert await any_client.hmget(h, []) == []


# -- sorted sets ---------------------------------------------------------------------------------


async def test_sorted_set_operations(any_client: Any, prefix: str) -> None:
    z = f"{prefix}:z"
    assert await any_client.zadd(z, {"a": 1, "b": 2.5, "c": 3}) == 3
    assert await any_client.zadd(z, {"a": 10, "d": 0}, nx=True) == 1
    assert await any_client.zscore(z, "a") == 1.0
    assert await any_client.zscore(z, "nope") is None
    assert await any_client.zcard(z) == 4
    assert await any_client.zrange(z, 0, -1) == ["d", "a", "b", "c"]
    assert await any_client.zrange(z, 0, 1, withscores=True) == [("d", 0.0), ("a", 1.0)]
    assert await any_client.zrangebyscore(z, 1, 3) == ["a", "b", "c"]
    assert await any_client.zrangebyscore(z, "(1", "+inf") == ["b", "c"]
    assert await any_client.zrangebyscore(z, "-inf", "+inf", offset=1, count=2) == ["a", "b"]
    assert await any_client.zrangebyscore(z, 2, 3, withscores=True) == [("b", 2.5), ("c", 3.0)]
    assert await any_client.zrem(z, "a", "nope") == 1
    assert await any_client.zcard(z) == 3


async def test_bzpopmin_pops_lowest_or_times_out(any_client: Any, prefix: str) -> None:
    z = f"{prefix}:bz"
    if not any_client.capabilities.blocking:
        with pytest.raises(BackendResponseError, match="not available"):
            await any_client.bzpopmin([z], 0.1)
        return
    await any_client.zadd(z, {"late": 5, "early": 1})
    assert await any_client.bzpopmin([z], 1) == (z, "early", 1.0)
    start = time.monotonic()
    assert await any_client.bzpopmin([f"{prefix}:empty"], 0.2) is None
    assert 0.15 < time.monotonic() - start < 1.5


async def test_bzpopmin_wakes_when_member_arrives(any_client: Any, prefix: str) -> None:
    if not any_client.capabilities.blocking:
        pytest.skip("transport has no blocking commands (asserted in the test above)")
    z = f"{prefix}:wake"

    async def add_later() -> None:
        await asyncio.sleep(0.2)
        await any_client.zadd(z, {"job": 7})

    task = asyncio.create_task(add_later())
    start = time.monotonic()
    assert await any_client.bzpopmin([z], 1.5) == (z, "job", 7.0)
    assert time.monotonic() - start < 1.2
    await task


# -- lists ---------------------------------------------------------------------------------------


async def test_list_operations(any_client: Any, prefix: str) -> None:
    lst = f"{prefix}:l"
    assert await any_client.rpush(lst, "b", "c") == 2
    assert await any_client.lpush(lst, "a") == 3
    assert await any_client.lrange(lst, 0, -1) == ["a", "b", "c"]
    assert await any_client.llen(lst) == 3
    assert await any_client.llen(f"{prefix}:nolist") == 0


# -- scripts -------------------------------------------------------------------------------------


async def test_evalsha_loads_unknown_script_and_retries(any_client: Any, prefix: str) -> None:
    # The prefix in the source makes the SHA new to the server: the first EVALSHA gets NOSCRIPT.
    tag = f"{{{prefix}}}"
    script = Script(
        "pair",
        f"-- KEYS[1], KEYS[2]: two keys; ARGV[1]: value ({prefix})\n"
        "redis.call('SET', KEYS[1], ARGV[1])\n"
        "redis.call('SET', KEYS[2], ARGV[1])\n"
        "return {redis.call('GET', KEYS[1]), tonumber(ARGV[2]) + 1}",
    )
    result = await any_client.evalsha(script, [f"{tag}:a", f"{tag}:b"], ["é", 41])
    assert result == ["é", 42]
    assert await any_client.get(f"{tag}:b") == "é"
    assert await any_client.script_load(script) == script.sha


async def test_script_error_is_response_error_with_message(any_client: Any, prefix: str) -> None:
    script = Script("boom", f"-- KEYS: none ({prefix})\nreturn redis.error_reply('LEASE_LOST x')")
    with pytest.raises(BackendResponseError, match="LEASE_LOST x"):
        await any_client.evalsha(script, [f"{prefix}:k"], [])
    bad = Script("bad", f"-- ({prefix})\nreturn redis.call('INCR', KEYS[1])")
    await any_client.set(f"{prefix}:k", "text")
    with pytest.raises(BackendResponseError, match="not an integer"):
        await any_client.evalsha(bad, [f"{prefix}:k"], [])


# -- pipelines and raw commands ------------------------------------------------------------------


async def test_pipeline_returns_raw_replies_and_errors_in_place(
    any_client: Any, prefix: str
) -> None:
    a, b = f"{prefix}:pa", f"{prefix}:pb"
    replies = await any_client.pipeline(
        [
            ("SET", a, "1", "PX", 60_000),
            ("INCRBY", a, 4),
            ("HSET", b, "f", "v"),
            ("INCR", b),
            ("HGETALL", b),
            ("GET", f"{prefix}:missing"),
        ]
    )
    assert replies[:3] == ["OK", 5, 1]
    assert isinstance(replies[3], BackendResponseError)
    assert "WRONGTYPE" in str(replies[3])
    assert replies[4] in (["f", "v"], {"f": "v"})
    assert replies[5] is None
    assert await any_client.pipeline([]) == []


async def test_pipeline_transaction(any_client: Any, prefix: str) -> None:
    if any_client.transport == "cluster":
        assert not any_client.capabilities.transactions
        with pytest.raises(BackendResponseError, match="not supported"):
            await any_client.pipeline([("INCR", f"{prefix}:t")], transaction=True)
        return
    if any_client.transport == "upstash":
        pytest.skip("the npm emulator has no /multi-exec endpoint (real Upstash has)")
    replies = await any_client.pipeline(
        [("INCR", f"{prefix}:t"), ("INCRBY", f"{prefix}:t", 2)], transaction=True
    )
    assert replies == [1, 3]


async def test_execute_raw_command_and_error(any_client: Any, prefix: str) -> None:
    await any_client.set(f"{prefix}:s", "abc")
    assert await any_client.execute("STRLEN", f"{prefix}:s") == 3
    with pytest.raises(BackendResponseError, match="WRONGTYPE"):
        await any_client.execute("LPUSH", f"{prefix}:s", "x")
    with pytest.raises(BackendResponseError, match=r"unknown command|doesn.t exist"):
        await any_client.execute("NOSUCHCOMMAND", "x")


# -- server --------------------------------------------------------------------------------------


async def test_ping_info_time(any_client: Any) -> None:
    latency = await any_client.ping()
    assert 0 < latency < 1
    info = await any_client.info("server")
    assert str(info["redis_version"]).count(".") == 2
    assert abs(await any_client.time() - time.time()) < 5


async def test_calls_after_close_raise_unavailable(any_client: Any, prefix: str) -> None:
    await any_client.close()
    with pytest.raises(BackendUnavailable):
        await any_client.get(f"{prefix}:a")
    with pytest.raises(BackendUnavailable):
        await any_client.mget([f"{prefix}:a", f"{prefix}:b"])
    with pytest.raises(BackendUnavailable):
        await any_client.delete(f"{prefix}:a", f"{prefix}:b")
    with pytest.raises(BackendUnavailable):
        await any_client.pipeline([("GET", f"{prefix}:a")])


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float, str | None]] = []

    def on_command(self, transport: str, command: str, seconds: float, error: str | None) -> None:
        self.calls.append((transport, command, seconds, error))


async def test_observer_sees_commands_and_error_categories(any_client: Any, prefix: str) -> None:
    recorder = Recorder()
    any_client._observer = recorder  # same client, observer attached after construction
    await any_client.set(f"{prefix}:o", "x")
    with pytest.raises(BackendResponseError):
        await any_client.incrby(f"{prefix}:o")
    await any_client.pipeline([("GET", f"{prefix}:o")])
    transport = any_client.transport
    assert [(t, c, e) for t, c, _, e in recorder.calls] == [
        (transport, "SET", None),
        (transport, "INCRBY", "BackendResponseError"),
        (transport, "PIPELINE", None),
    ]
    assert all(0 <= s < 2 for _, _, s, _ in recorder.calls)
