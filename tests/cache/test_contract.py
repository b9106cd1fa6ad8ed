"""The cache contract: every backend (memory, RESP, Cluster, Upstash, fallback) behaves alike."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest

from redkeep.cache import MISSING, CacheService
from redkeep.errors import InvalidKey, PayloadTooLarge, SerializationError
from redkeep.serialization import JsonSerializer


async def test_get_set_roundtrip_and_default(cache: CacheService) -> None:
    assert await cache.get("absent") is None
    assert await cache.get("absent", "dflt") == "dflt"
    await cache.set("k", {"a": [1, 2, "x"], "b": None})
    assert await cache.get("k") == {"a": [1, 2, "x"], "b": None}
    await cache.set("k", "overwritten")
    assert await cache.get("k") == "overwritten"


async def test_stored_none_is_a_hit(cache: CacheService) -> None:
    await cache.set("n", None)
    assert await cache.get("n", MISSING) is None
    assert await cache.get("other", MISSING) is MISSING
    assert await cache.has("n")


async def test_add_only_when_absent(cache: CacheService) -> None:
    assert await cache.add("k", 1) is True
    assert await cache.add("k", 2) is False
    assert await cache.get("k") == 1


async def test_delete_and_has(cache: CacheService) -> None:
    await cache.set("k", 1)
    assert await cache.has("k")
    assert await cache.delete("k") is True
    assert await cache.delete("k") is False
    assert not await cache.has("k")
    assert await cache.get("k") is None


async def test_batch_operations(cache: CacheService) -> None:
    await cache.set_many({"a": 1, "b": [2], "c": {"x": 3}})
    assert await cache.get_many(["a", "b", "c", "zz"]) == {"a": 1, "b": [2], "c": {"x": 3}}
    assert await cache.get_many([]) == {}
    assert await cache.delete_many(["a", "c", "zz"]) == 2
    assert await cache.get_many(["a", "b", "c"]) == {"b": [2]}
    assert await cache.delete_many([]) == 0


async def test_set_many_with_ttl(cache: CacheService) -> None:
    await cache.set_many({"a": 1, "b": 2}, ttl=100)
    for key in ("a", "b"):
        remaining = await cache.ttl(key)
        assert remaining is not None and 98 < remaining <= 100


async def test_incr(cache: CacheService) -> None:
    assert await cache.incr("n") == 1
    assert await cache.incr("n", 10) == 11
    assert await cache.incr("n", -20) == -9
    assert await cache.get("n") == -9
    await cache.set("s", "text")
    with pytest.raises(SerializationError, match="integer"):
        await cache.incr("s")
    with pytest.raises(TypeError):
        await cache.incr("n", 1.5)  # type: ignore[arg-type]


async def test_ttl_and_touch(cache: CacheService) -> None:
    await cache.set("a", 1, ttl=100)
    remaining = await cache.ttl("a")
    assert remaining is not None and 99 < remaining <= 100
    await cache.set("b", 1, ttl=timedelta(minutes=2))
    remaining = await cache.ttl("b")
    assert remaining is not None and 119 < remaining <= 120
    await cache.set("c", 1)
    assert await cache.ttl("c") is None
    assert await cache.ttl("absent") is None
    assert await cache.touch("c", 50) is True
    remaining = await cache.ttl("c")
    assert remaining is not None and 49 < remaining <= 50
    assert await cache.touch("absent", 50) is False
    assert await cache.touch("c", None) is True  # no default TTL: expiry removed
    assert await cache.ttl("c") is None


@pytest.mark.parametrize("bad", [0, -1, -0.5, timedelta(0), timedelta(seconds=-3), math.nan])
async def test_non_positive_ttl_rejected(cache: CacheService, bad: Any) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await cache.set("k", 1, ttl=bad)
    with pytest.raises(ValueError, match="ttl"):
        await cache.set_many({"k": 1}, ttl=bad)
    with pytest.raises(ValueError, match="ttl"):
        await cache.touch("k", bad)
    assert not await cache.has("k")


async def test_entries_expire(cache: CacheService) -> None:
    await cache.set("short", "v", ttl=0.15)
    await cache.set("long", "v", ttl=60)
    assert await cache.get("short") == "v"
    await asyncio.sleep(0.3)
    assert await cache.get("short") is None
    assert not await cache.has("short")
    assert await cache.get_many(["short", "long"]) == {"long": "v"}


async def test_default_ttl_applies(make_cache: Callable[..., Any], request: Any) -> None:
    kind = "memory" if "memory" in request.node.name else "mux"
    c = await make_cache(kind, default_ttl=30)
    await c.set("k", 1)
    await c.incr("n")
    for key in ("k", "n"):
        remaining = await c.ttl(key)
        assert remaining is not None and 29 < remaining <= 30
    await c.set("k", 1, ttl=5)
    remaining = await c.ttl("k")
    assert remaining is not None and remaining <= 5


KEYS = [
    "plain",
    "ünïcødé ключ 键 🔑",
    "with spaces",
    "{tag}",
    "a{b}c",
    "}{",
    "star*glob?[x]",
    "colons:in:key",
    "new\nline",
    "back\\slash",
    "x" * 1024,
]


async def test_all_kinds_of_keys_are_distinct_and_work(cache: CacheService) -> None:
    for i, key in enumerate(KEYS):
        await cache.set(key, i)
    for i, key in enumerate(KEYS):
        assert await cache.get(key) == i, key
    assert await cache.get_many(KEYS) == {k: i for i, k in enumerate(KEYS)}
    # Glob characters in a key are not patterns: nothing else matches.
    assert await cache.get("starXglob?[x]") is None
    got = {key async for key, _, _ in cache.items()}
    assert got == set(KEYS)
    assert await cache.delete_many(KEYS) == len(KEYS)


@pytest.mark.parametrize(
    ("key", "match"),
    [
        ("", "empty"),
        ("x" * 1025, "1025 characters"),
        (b"bytes", "bytes"),
        (5, "int"),
        (None, "NoneType"),
    ],
)
async def test_bad_keys_raise_invalid_key(cache: CacheService, key: Any, match: str) -> None:
    with pytest.raises(InvalidKey, match=match):
        await cache.get(key)
    with pytest.raises(InvalidKey):
        await cache.set(key, 1)
    with pytest.raises(InvalidKey):
        await cache.get_many(["ok", key])
    with pytest.raises(InvalidKey):
        await cache.set_many({"ok": 1, key: 2})
    assert not await cache.has("ok")  # nothing written
    with pytest.raises(InvalidKey):
        await cache.delete(key)
    with pytest.raises(InvalidKey):
        await cache.get_or_set(key, lambda: 1)


async def test_single_str_is_not_a_key_list(cache: CacheService) -> None:
    with pytest.raises(InvalidKey, match="single str"):
        await cache.get_many("abc")


class Unserializable:
    pass


SAMPLES: dict[str, Any] = {
    "none": None,
    "bool": True,
    "int": -(2**63),
    "bigint": 2**100,
    "float": 1.5,
    "nan_inf": [math.inf, -math.inf],
    "str": "ünïcødé 🔑\n\x00",
    "list": [1, "a", None, [2, {"b": 3}]],
    "dict": {"a": {"b": [1, 2]}, "__rk__": "user data"},
    "datetime": datetime(2026, 11, 27, 9, 30, 1, 123456, tzinfo=UTC),
    "naive_dt": datetime(2026, 1, 2, 3, 4, 5),
    "date": date(2026, 11, 27),
    "time": time(9, 30, 15),
    "timedelta": timedelta(days=2, seconds=5, microseconds=7),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "decimal": Decimal("12345.678900000000000001"),
    "bytes": b"\x00\xff binary",
    "set": {1, 2, 3},
    "frozenset": frozenset({"a"}),
    "tuple": (1, "two", (3.0,)),
}


async def test_every_serializer_type_round_trips(cache: CacheService) -> None:
    for name, value in SAMPLES.items():
        await cache.set(name, value)
    for name, value in SAMPLES.items():
        got = await cache.get(name)
        assert got == value and type(got) is type(value), name
    nan = math.nan
    await cache.set("nan", nan)
    assert math.isnan(await cache.get("nan"))
    assert await cache.get_many(list(SAMPLES)) == SAMPLES


async def test_unserializable_value_raises_and_writes_nothing(cache: CacheService) -> None:
    with pytest.raises(SerializationError, match="Unserializable"):
        await cache.set("k", Unserializable())
    with pytest.raises(SerializationError):
        await cache.set("k", {"ok": 1, "bad": [Unserializable()]})
    with pytest.raises(SerializationError):
        await cache.add("k", {1: "non-str dict key"})
    with pytest.raises(SerializationError):
        await cache.set_many({"a": 1, "k": Unserializable()})
    with pytest.raises(SerializationError):
        await cache.get_or_set("k", Unserializable)
    assert not await cache.has("k")
    assert not await cache.has("a")


async def test_payload_limit(make_cache: Callable[..., Any], request: Any) -> None:
    kind = "memory" if "memory" in request.node.name else "mux"
    c = await make_cache(kind, serializer=JsonSerializer(max_payload_bytes=100))
    await c.set("small", "x" * 50)
    with pytest.raises(PayloadTooLarge):
        await c.set("big", "x" * 200)
    assert not await c.has("big")


async def test_clear_only_this_namespace(
    cache: CacheService, make_cache: Callable[..., Any], request: Any
) -> None:
    kind = request.node.callspec.params["cache"]
    other = await make_cache(kind, name="other")
    await cache.set_many({f"k{i}": i for i in range(1200)})
    await other.set("k1", "kept")
    assert await cache.clear() == 1200
    assert await cache.get_many([f"k{i}" for i in range(1200)]) == {}
    assert await other.get("k1") == "kept"
    assert await cache.clear() == 0


async def test_items_yield_entries_with_ttl(cache: CacheService) -> None:
    await cache.set("a", {"v": 1}, ttl=100)
    await cache.set("b", [2])
    got = {k: (v, ttl) async for k, v, ttl in cache.items()}
    assert set(got) == {"a", "b"}
    assert got["a"][0] == {"v": 1}
    assert got["a"][1] is not None and 98 < got["a"][1] <= 100
    assert got["b"] == ([2], None)


async def test_get_or_set_and_factory_errors_not_cached(cache: CacheService) -> None:
    calls = 0

    async def factory() -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"n": calls}

    assert await cache.get_or_set("k", factory, ttl=60) == {"n": 1}
    assert await cache.get_or_set("k", factory) == {"n": 1}
    assert calls == 1
    remaining = await cache.ttl("k")
    assert remaining is not None and remaining <= 60
    assert await cache.get_or_set("sync", lambda: "plain") == "plain"

    def boom() -> int:
        raise RuntimeError("factory failed")

    with pytest.raises(RuntimeError, match="factory failed"):
        await cache.get_or_set("e", boom)
    assert not await cache.has("e")
    assert await cache.get_or_set("e", lambda: 5) == 5


async def test_stats_count_operations(cache: CacheService) -> None:
    await cache.set("a", 1)
    await cache.get("a")
    await cache.get("missing")
    await cache.get_many(["a", "missing"])
    await cache.delete("a")
    s = cache.stats()
    assert (s.hits, s.misses, s.sets, s.deletes) == (2, 2, 1, 1)
    assert s.hit_ratio == 0.5
    assert s.operations >= 5
    assert s.errors == 0
    assert s.fallback_reads == 0 and s.fallback_writes == 0
