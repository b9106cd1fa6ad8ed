"""Scenario 7: bad input. Generated keys, values and payloads; corrupted job records in Redis.

* Cache (Redis): hypothesis-generated keys and values. A valid key with a supported value
  round-trips; anything else raises a typed error (InvalidKey, SerializationError,
  PayloadTooLarge) and writes nothing.
* Queue (Redis): generated job names and payloads. Valid ones round-trip through get_job; bad
  ones raise InvalidJob / SerializationError / PayloadTooLarge and enqueue nothing.
* Corrupted job records written straight into Redis next to good jobs: the worker stays alive,
  every good job completes, and each corrupted record ends failed with a reason (completed when
  it is still runnable) or reading it raises a typed error; none stays stuck in waiting/active.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redkeep.cache import RedisCache
from redkeep.errors import InvalidKey, PayloadTooLarge, RedkeepError, SerializationError
from redkeep.queue import InvalidJob, Job, RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient
from redkeep.serialization import JsonSerializer
from tests.reliability.harness import Deadline, Figures, scale, wait_until

pytestmark = pytest.mark.slow

TITLE = "Bad input: generated keys, values and payloads; corrupted job records"
EXAMPLES = scale(60, 400)
MAX_KEY = 64
MAX_BYTES = 2048
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=50),
    st.binary(max_size=50),
)
SUPPORTED = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=10), inner, max_size=5),
    ),
    max_leaves=20,
)
UNSUPPORTED = st.one_of(
    st.builds(object),
    st.just(lambda: None),
    st.lists(st.builds(object), min_size=1, max_size=2),
    st.dictionaries(st.text(max_size=5), st.builds(object), min_size=1, max_size=2),
)
BIG = st.text(min_size=MAX_BYTES + 1, max_size=MAX_BYTES + 50)


# About half valid (any characters: NUL, braces, globs, emoji), half invalid.
def _half(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` or ``bad`` with equal odds (a flat one_of would weight each bad branch)."""
    return st.booleans().flatmap(lambda ok: good if ok else bad)


KEYS = _half(
    st.text(min_size=1, max_size=MAX_KEY),
    st.one_of(
        st.just(""), st.text(min_size=MAX_KEY + 1, max_size=MAX_KEY + 20),
        st.binary(min_size=1, max_size=10), st.integers(), st.none(),
    ),
)  # fmt: skip


def _valid_key(key: object) -> bool:
    return type(key) is str and 0 < len(key) <= MAX_KEY


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b) and type(a) is type(b)


def test_cache_rejects_bad_keys_and_values_with_typed_errors(
    redis_url: str, prefix: str, figures: Callable[..., Figures]
) -> None:
    fig = figures("bad_input", TITLE, part="cache_fuzz")
    seen: Counter[str] = Counter()

    @FUZZ
    @given(key=KEYS, value=_half(SUPPORTED, st.one_of(UNSUPPORTED, BIG)), data=st.data())
    def check(key: Any, value: Any, data: st.DataObject) -> None:
        seen[asyncio.run(_cache_case(redis_url, prefix, key, value, data))] += 1

    check()
    fig.record(examples=sum(seen.values()), **dict(sorted(seen.items())))


async def _cache_case(redis_url: str, prefix: str, key: Any, value: Any, data: Any) -> str:
    client = MuxClient(redis_url)
    cache = RedisCache(
        client, "fuzz", key_prefix=prefix, max_key_length=MAX_KEY,
        serializer=JsonSerializer(max_payload_bytes=MAX_BYTES),
    )  # fmt: skip
    try:
        if not _valid_key(key):
            with pytest.raises(InvalidKey):
                await cache.set(key, value)
            with pytest.raises(InvalidKey):
                await cache.get(key)
            return "InvalidKey"
        await cache.delete(key)
        try:
            await cache.set(key, value)
        except SerializationError as exc:
            assert str(exc), "a SerializationError must say what was wrong"
            assert not await cache.has(key), "a refused value was written"
            if isinstance(exc, PayloadTooLarge):
                assert exc.size > MAX_BYTES
            return type(exc).__name__
        got = await cache.get(key)
        assert _same(got, value) or got == value, f"{value!r} came back as {got!r}"
        other = data.draw(UNSUPPORTED)
        with pytest.raises(SerializationError):
            await cache.set(key, other)
        assert await cache.get(key) == got, "a refused overwrite changed the stored value"
        return "round_trip"
    finally:
        await client.close()


NAMES = _half(
    st.text(min_size=1, max_size=200),
    _half(
        st.text(min_size=1, max_size=200),
        st.one_of(st.just(""), st.text(min_size=201, max_size=210), st.integers(), st.none()),
    ),
)  # fmt: skip
JSON_PAYLOADS = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=50),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)  # fmt: skip


JOB_IDS = _half(
    st.one_of(st.none(), st.text(min_size=1, max_size=200)),
    _half(
        st.one_of(st.none(), st.text(min_size=1, max_size=200)),
        st.one_of(st.just(""), st.text(min_size=201, max_size=210), st.integers()),
    ),
)  # fmt: skip


def test_enqueue_rejects_bad_names_and_payloads_with_typed_errors(
    redis_url: str, prefix: str, figures: Callable[..., Figures]
) -> None:
    fig = figures("bad_input", TITLE, part="queue_fuzz")
    seen: Counter[str] = Counter()

    @FUZZ
    @given(
        name=NAMES,
        payload=st.one_of(JSON_PAYLOADS, SUPPORTED, UNSUPPORTED, BIG),
        job_id=JOB_IDS,
    )
    def check(name: Any, payload: Any, job_id: Any) -> None:
        seen[asyncio.run(_enqueue_case(redis_url, prefix, name, payload, job_id))] += 1

    check()
    fig.record(examples=sum(seen.values()), **dict(sorted(seen.items())))


async def _enqueue_case(redis_url: str, prefix: str, name: Any, payload: Any, job_id: Any) -> str:
    client = MuxClient(redis_url)
    queue = RedisJobQueue(
        client, f"fuzz-{uuid.uuid4().hex[:8]}", key_prefix=prefix, max_payload_bytes=MAX_BYTES
    )
    try:
        try:
            job = await queue.enqueue(name, payload, job_id=job_id)
        except (InvalidJob, SerializationError) as exc:
            assert str(exc)
            assert sum((await queue.counts()).values()) == 0, "a refused enqueue wrote something"
            return type(exc).__name__
        assert isinstance(name, str) and 0 < len(name) <= 200
        assert job_id is None or (isinstance(job_id, str) and 0 < len(job_id) <= 200)
        assert job_id is None or job.id == job_id
        stored = await queue.get_job(job.id)
        assert stored is not None and stored.name == name
        # Job payloads go through the exact serializer: they come back as they were.
        assert stored.payload == payload
        assert stored.payload_error is None
        return "round_trip"
    finally:
        await client.close()


# -- corrupted records ---------------------------------------------------------------------------

# A well-formed waiting job (layout 2: a state record and a data record, fields of the queue's
# `state` and `data` hashes); each corruption replaces one of them. ``None`` leaves that record
# out ("no_records" writes only the waiting entry).
VALID_STATE = "waiting|0|0|0|2|1700000000000|1700000000000|||"
VALID_DATA = '["{id}","work",null]\n1'
CORRUPTIONS: dict[str, tuple[str | None, str | None]] = {
    "payload_not_json": (VALID_STATE, '["{id}","work",null]\n{not json'),
    "unknown_handler": (VALID_STATE, '["{id}","no-such-handler",null]\n1'),
    "no_state": (None, VALID_DATA),
    "no_data": (VALID_STATE, None),
    "no_records": (None, None),
    "bad_state_record": ("not a state record", VALID_DATA),
    "bad_attempts": ("waiting|many|0|0|2|1700000000000|1700000000000|||", VALID_DATA),
    "bad_max_attempts": ("waiting|0|0|0|lots|1700000000000|1700000000000|||", VALID_DATA),
    "no_max_attempts": ("waiting|0|0|0||1700000000000|1700000000000|||", VALID_DATA),
    "bad_priority": ("waiting|0|0|high|2|1700000000000|1700000000000|||", VALID_DATA),
    "bad_backoff": (VALID_STATE, '["{id}","work",null,"[[["]\n1'),
    "bad_timeout": (VALID_STATE, '["{id}","work","soon"]\n1'),
    "bad_data_header": (VALID_STATE, '["{id}","work"\n1'),
    "bad_status": ("zombie|0|0|0|2|1700000000000|1700000000000|||", VALID_DATA),
}
GOOD_JOBS = 40
SETTLE = scale(8.0, 20.0)


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
async def test_corrupted_job_record_fails_alone_and_worker_survives(
    kind: str, redis_url: str, prefix: str, figures: Callable[..., Figures]
) -> None:
    fig = figures("bad_input", TITLE, part=kind)
    client = MuxClient(redis_url)
    queue = RedisJobQueue(client, "corrupt", key_prefix=prefix, max_attempts=2, backoff=None)
    keys = queue.keys
    good = [await queue.enqueue("work", {"n": n}) for n in range(GOOD_JOBS)]
    # Give the bad record a place in the middle of the waiting set, so it is claimed in the
    # same batch as good jobs.
    bad_id = f"corrupt-{kind}"
    middle = await client.zrange(keys.waiting, GOOD_JOBS // 2, GOOD_JOBS // 2, withscores=True)
    await client.zadd(keys.waiting, {bad_id: float(middle[0][1]) + 0.5})
    state, data = CORRUPTIONS[kind]
    if state is not None:
        await client.hset(keys.state, {bad_id: state})
    if data is not None:
        await client.hset(keys.data, {bad_id: data.replace("{id}", bad_id)})

    done: set[str] = set()

    async def work(job: Job) -> None:
        done.add(job.id)

    worker = Worker(queue, {"work": work}, concurrency=10, lease=1.0, handle_signals=False)
    runner = asyncio.create_task(worker.run())
    settle = Deadline(SETTLE)
    try:
        good_ids = {j.id for j in good}

        async def settled() -> bool:
            counts = await queue.counts()
            return good_ids <= done and counts["waiting"] + counts["active"] == 0

        with contextlib.suppress(AssertionError):
            await wait_until(settled, timeout=SETTLE, what="good jobs done, nothing stuck")
        alive = not runner.done()
        counts = await queue.counts()
        try:
            bad = await queue.get_job(bad_id)
            read_error = None
        except RedkeepError as exc:
            bad, read_error = None, f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # untyped: a bug, reported below
            bad, read_error = None, f"UNTYPED {type(exc).__name__}: {exc}"
        good_status = {j.id: (await queue.get_job(j.id)) for j in good}
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner, 15)
        await client.close()

    lost_good = sorted(i for i, j in good_status.items() if j is None or j.status != "completed")
    fig.record(
        jobs=GOOD_JOBS, lost=len(lost_good), settle_s=round(settle.elapsed, 1),
        worker_alive=alive, stuck=counts["waiting"] + counts["active"],
        bad_status=bad.status.value if bad is not None else None,
        bad_reason=(bad.error.message[:80] if bad is not None and bad.error else read_error),
    )  # fmt: skip
    assert alive, "the worker died"
    assert not lost_good, f"{len(lost_good)} good jobs not completed: {lost_good[:5]}"
    assert counts["waiting"] + counts["active"] == 0, f"jobs stuck: {counts}"
    if read_error is not None:
        assert not read_error.startswith("UNTYPED"), read_error
    elif bad is not None:
        # A record that is still runnable may complete; otherwise it must fail with a reason.
        assert bad.status in ("completed", "failed"), f"corrupted record ended {bad.status}"
        if bad.status == "failed":
            assert bad.error is not None and bad.error.message, "failed without a reason"
