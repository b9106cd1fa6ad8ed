"""The snapshot format on its own: records round-trip through a line exactly (property-based)."""

from __future__ import annotations

import io
import math
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from redkeep.migrate.snapshot import (
    CacheRecord,
    JobRecord,
    SnapshotWriter,
    decode_record,
    encode_record,
    end_line,
    header_line,
    read_snapshot,
)
from redkeep.names import NAME_RE
from redkeep.queue.backoff import Backoff
from redkeep.queue.job import Job, JobFailure, JobStatus
from tests.migrate.conftest import same_value

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text()
)
leaf = json_leaf | st.binary(max_size=20) | st.datetimes() | st.dates() | st.uuids()
values = st.recursive(
    leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.tuples(inner, inner)
    ),
    max_leaves=12,
)
# Job payloads and results are plain JSON (the queue stores them with orjson): no big ints, no
# infinities.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
cache_names = queue_names = st.from_regex(NAME_RE, fullmatch=True)


def _deep_equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and type(a) is type(b):
        return len(a) == len(b) and all(_deep_equal(x, y) for x, y in zip(a, b, strict=True))
    return same_value(a, b)


@settings(max_examples=150, deadline=None)
@given(
    cache=cache_names,
    key=st.text(min_size=1, max_size=30),
    value=values,
    expires=st.none() | st.floats(min_value=0, max_value=4e9),
)
def test_cache_records_round_trip(cache: str, key: str, value: Any, expires: float | None) -> None:
    record = CacheRecord(cache, key, value, expires)
    line = encode_record(record)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one record, one line
    back = decode_record(orjson.loads(line))
    assert isinstance(back, CacheRecord)
    assert (back.cache, back.key, back.expires_at) == (cache, key, expires)
    assert _deep_equal(back.value, value)


statuses = st.sampled_from(list(JobStatus))
times = st.none() | st.floats(min_value=0, max_value=4e9)


@settings(max_examples=100, deadline=None)
@given(
    queue=queue_names,
    job_id=st.text(min_size=1, max_size=20),
    payload=json_values,
    result=json_values,
    status=statuses,
    attempts=st.integers(0, 50),
    priority=st.integers(-1000, 1000),
    run_at=times,
    finished=times,
    error=st.none() | st.builds(JobFailure, st.text(min_size=1), st.text(), st.text()),
    backoff=st.none()
    | st.builds(
        Backoff,
        st.floats(0, 100),
        st.floats(0, 1000),
        st.sampled_from(["exponential", "fixed"]),
        st.booleans(),
    ),
)
def test_job_records_round_trip(
    queue: str,
    job_id: str,
    payload: Any,
    result: Any,
    status: JobStatus,
    attempts: int,
    priority: int,
    run_at: float | None,
    finished: float | None,
    error: JobFailure | None,
    backoff: Backoff | None,
) -> None:
    job = Job(
        id=job_id,
        name="handler",
        queue=queue,
        payload=payload,
        status=status,
        priority=priority,
        attempts=attempts,
        max_attempts=attempts + 1,
        created_at=1.5,
        run_at=run_at,
        finished_at=finished,
        result=result,
        error=error,
        worker_id="w",
        timeout=2.0,
        backoff=backoff,
    )
    back = decode_record(orjson.loads(encode_record(JobRecord(queue, job))))
    assert isinstance(back, JobRecord) and back.queue == queue
    assert back.job == job


def test_writer_produces_a_readable_complete_file(tmp_path: Any) -> None:
    path = tmp_path / "s.jsonl"
    writer = SnapshotWriter(path)
    writer.write(CacheRecord("c", "k", {"x": b"\x00"}, None))
    assert not path.exists()  # nothing visible before close(): a crash leaves no half file
    writer.close()
    with path.open("rb") as fh:
        lines = list(read_snapshot(fh))
    assert len(lines) == 1 and lines[0].error is None
    assert lines[0].record == CacheRecord("c", "k", {"x": b"\x00"}, None)

    aborted = SnapshotWriter(tmp_path / "other.jsonl")
    aborted.write(CacheRecord("c", "k", 1, None))
    aborted.abort()
    assert list(tmp_path.iterdir()) == [path]


def test_blank_lines_are_ignored_and_numbers_stay_true() -> None:
    body = (
        header_line() + b"\n" + encode_record(CacheRecord("c", "a", 1)) + b"{broken\n" + end_line(2)
    )
    lines = list(read_snapshot(io.BytesIO(body)))
    assert [(line.number, line.error is None) for line in lines] == [(3, True), (4, False)]
