"""Migrating to and from a Redis Cluster and Upstash REST: snapshot -> target -> snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from redkeep.config import Settings
from redkeep.migrate import (
    CacheRecord,
    JobRecord,
    migrate,
    open_source,
    open_target,
    parse_endpoint,
    write_snapshot,
)
from tests.migrate.conftest import Stores, same_value

SETTINGS = Settings(backend="memory")


def _endpoint(kind: str, request: pytest.FixtureRequest) -> tuple[str, str | None]:
    if kind == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        return "redis+cluster://" + cluster.url.split("://", 1)[1], None
    emulator = request.getfixturevalue("upstash_emulator")
    return "upstash+http://" + emulator.url.split("://", 1)[1], emulator.token


async def _copy(src: str, dst: str, *, token: str | None = None, **prefixes: str) -> Any:
    source = open_source(
        parse_endpoint(src, token=token, key_prefix=prefixes.get("from_prefix")), SETTINGS
    )
    target = open_target(
        parse_endpoint(dst, token=token, key_prefix=prefixes.get("to_prefix"), option="--to"),
        SETTINGS,
    )
    try:
        return await migrate(source, target)
    finally:
        await source.close()
        await target.close()


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("cluster", marks=pytest.mark.cluster),
        pytest.param("upstash", marks=pytest.mark.upstash),
    ],
)
async def test_snapshot_through_transport_and_back(
    kind: str, stores: Stores, tmp_path: Path, prefix: str, request: pytest.FixtureRequest
) -> None:
    url, token = _endpoint(kind, request)
    before, after = tmp_path / "before.jsonl", tmp_path / "after.jsonl"
    await write_snapshot(before, *stores.mappings())
    total = stores.cache_count + stores.job_count

    report = await _copy(str(before), url, token=token, to_prefix=prefix)
    assert report.verified and report.copied == total
    again = await _copy(str(before), url, token=token, to_prefix=prefix)
    assert again.copied == 0 and again.existed == total

    back = await _copy(url, str(after), token=token, from_prefix=prefix)
    assert back.copied == total

    source = open_source(parse_endpoint(str(after)), SETTINGS)
    records = [line.record async for line in source.lines() if line.record is not None]
    caches = {(r.cache, r.key): r for r in records if isinstance(r, CacheRecord)}
    jobs = {r.job.id: r.job for r in records if isinstance(r, JobRecord)}
    for name, cache in stores.caches.items():
        async for key, value, remaining in cache.items():
            got = caches[(name, key)]
            assert same_value(got.value, value), (name, key)
            if remaining is None:
                assert got.expires_at is None
            else:
                left = got.remaining()
                assert left is not None and remaining - 15 < left <= remaining + 3  # REST latency
    assert set(jobs) == set(stores.jobs)
    for job_id, original in stores.jobs.items():
        got_job = jobs[job_id]
        assert (got_job.status, got_job.attempts, got_job.priority, got_job.payload) == (
            original.status,
            original.attempts,
            original.priority,
            original.payload,
        ), job_id
        assert got_job.error == original.error and got_job.result == original.result
