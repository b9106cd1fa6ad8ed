"""Property: no tiered cache read is staler than the documented bound (Hypothesis, real Redis).

Two "processes" (each its own client, listener and L1) and a plain redis-py client run a
generated sequence of steps against a private redis-server, one at a time: a write (set, set
with a short TTL, delete, incr) by either process or the plain client, a pause, three reads
(get or get_many) by either process, and sometimes a kill of every invalidation connection.
A model records, per key, every value Redis may have held and the window in which it may have
been current (from the start of the write that made it to the end of the write that replaced
it, or to its expiry). Every read must return:

- a value that was current at some instant between ``start - max_lag`` and its end (the
  staleness bound of docs/cache.md); and
- nothing older than the reading process's own last completed write of that key
  (read-your-writes within a process).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redkeep.cache import InvalidationListener, RedisCache, TieredCache
from redkeep.redis.mux import MuxClient
from tests.cache.conftest import wait_until_fresh
from tests.support.redis_server import RedisServer

MAX_LAG = 0.05  # small against the pauses below, so that a missed invalidation shows
TOLERANCE = 0.005  # Redis keeps expiries in whole milliseconds
PLAIN_KEYS = ["k0", "k1"]  # set / delete / incr
TTL_KEY = "t0"  # set with a short TTL / delete
WHO = ["A", "B", "raw"]
_examples = itertools.count()
l1_hits: list[int] = []  # per example, to check that the L1 did answer reads


@dataclass
class Segment:
    """A value Redis may have held for ``key`` from ``start`` up to ``end`` (None: absent)."""

    value: Any
    start: float
    end: float = math.inf
    writer: str = ""
    index: int = 0


@dataclass
class Model:
    segments: dict[str, list[Segment]] = field(default_factory=dict)
    own_last: dict[tuple[str, str], int] = field(default_factory=dict)
    writes: int = 0

    def history(self, key: str) -> list[Segment]:
        return self.segments.setdefault(key, [Segment(None, -math.inf)])

    def wrote(self, who: str, key: str, value: Any, start: float, end: float, ttl: float | None):
        self.writes += 1
        history = self.history(key)
        for seg in history:
            seg.end = min(seg.end, end)  # whatever was current is replaced by the end of this write
        history.append(Segment(value, start, writer=who, index=self.writes))
        if ttl is not None and value is not None:
            history[-1].end = end + ttl + TOLERANCE
            history.append(Segment(None, start + ttl - TOLERANCE, index=self.writes))
        self.own_last[(who, key)] = self.writes

    def allowed(self, who: str, key: str, value: Any, start: float, end: float) -> bool:
        own = self.own_last.get((who, key), 0)
        return any(
            seg.value == value
            and seg.start <= end
            and seg.end >= start - MAX_LAG
            and (seg.index >= own or seg.end >= start)
            for seg in self.history(key)
        )


class Process:
    def __init__(self, url: str, prefix: str) -> None:
        self.client = MuxClient(url)
        self.listener = InvalidationListener(url, key_prefix=prefix, max_lag=MAX_LAG)
        self.cache = TieredCache(RedisCache(self.client, "p", key_prefix=prefix), self.listener)

    async def close(self) -> None:
        await self.cache.close()
        await self.listener.close()
        await self.client.close()


@dataclass(frozen=True)
class Step:
    """One write, a pause, then reads (and perhaps a kill of every invalidation connection)."""

    write: str  # set / set_ttl / delete / incr
    writer: str  # A / B / raw
    key: str
    pause: float
    reader: str  # A / B
    read_key: str
    read: str  # get / get_many
    kill: bool


STEPS = st.lists(
    st.builds(
        Step,
        write=st.sampled_from(["set", "set", "set_ttl", "delete", "incr"]),
        writer=st.sampled_from(WHO),
        key=st.sampled_from([*PLAIN_KEYS, TTL_KEY]),
        pause=st.sampled_from([0.0, 0.01, 2 * MAX_LAG]),
        reader=st.sampled_from(["A", "B"]),
        read_key=st.sampled_from([*PLAIN_KEYS, TTL_KEY]),
        read=st.sampled_from(["get", "get_many"]),
        kill=st.integers(0, 7).map(lambda n: n == 0),
    ),
    min_size=3,
    max_size=25,
)


async def scenario(url: str, steps: list[Step]) -> None:
    prefix = f"prop{next(_examples)}x{time.monotonic_ns()}"
    procs = {"A": Process(url, prefix), "B": Process(url, prefix)}
    raw = aredis.Redis.from_url(url, decode_responses=True)
    model = Model()
    values = itertools.count(1)
    try:
        for p in procs.values():
            await wait_until_fresh(p.listener)
        for step in steps:
            await write(step, procs, raw, prefix, model, next(values))
            await asyncio.sleep(step.pause)
            cache = procs[step.reader].cache
            for _ in range(3):  # fill, then likely L1 hits (a late invalidation may drop a fill)
                start = time.monotonic()
                if step.read == "get":
                    got = await cache.get(step.read_key)
                else:
                    got = (await cache.get_many([step.read_key, "k-absent"])).get(step.read_key)
                end = time.monotonic()
                assert model.allowed(step.reader, step.read_key, got, start, end), (
                    f"{step.reader} read {step.read_key}={got!r} in [{start:.4f}, {end:.4f}]; "
                    f"history {model.history(step.read_key)}"
                )
            if step.kill:
                for client in await raw.client_list():
                    if client.get("name") == "redkeep-invalidation":
                        await raw.client_kill_filter(_id=client["id"])
        l1_hits.append(sum(p.cache.stats().l1_hits for p in procs.values()))
    finally:
        for p in procs.values():
            await p.close()
        await raw.aclose()


async def write(
    step: Step, procs: dict[str, Process], raw: aredis.Redis, prefix: str, model: Model, n: int
) -> None:
    op, key = step.write, step.key
    if key == TTL_KEY and op == "incr":
        op = "set"  # counters keep their TTL: the model keeps TTLs to the TTL key's plain sets
    if key != TTL_KEY and op == "set_ttl":
        op = "set"
    ttl = 0.05 if op == "set_ttl" else None
    value: Any = None if op == "delete" else n
    start = time.monotonic()
    if step.writer == "raw":
        full = f"{prefix}:cache:p:{key}"
        if op == "delete":
            await raw.delete(full)
        elif op == "incr":
            value = await raw.incr(full)
        else:
            await raw.set(full, str(value), px=None if ttl is None else 50)
    else:
        cache = procs[step.writer].cache
        if op == "delete":
            await cache.delete(key)
        elif op == "incr":
            value = await cache.incr(key)
        else:
            await cache.set(key, value, ttl=ttl)
    model.wrote(step.writer, key, value, start, time.monotonic(), ttl)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
def test_tiered_reads_respect_the_staleness_bound(
    redis_server_factory: Callable[..., RedisServer], steps: list[Step]
) -> None:
    server = _server(redis_server_factory)
    asyncio.run(scenario(server.url, steps))


def test_the_property_runs_exercised_the_l1() -> None:
    # Runs after the property (file order): generated sequences must hit the L1, else the
    # property above would say little. (A loaded machine bypasses L1 more often: lenient.)
    if not l1_hits:
        pytest.skip("the property test did not run in this session")
    assert sum(1 for h in l1_hits if h > 0) >= max(1, len(l1_hits) // 10), l1_hits


_servers: dict[int, RedisServer] = {}


def _server(factory: Callable[..., RedisServer]) -> RedisServer:
    """One private server for all examples of a test run (the factory stops it afterwards)."""
    key = id(factory)
    if key not in _servers:
        _servers.clear()
        _servers[key] = factory()
    return _servers[key]
