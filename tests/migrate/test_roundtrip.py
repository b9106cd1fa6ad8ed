"""Memory -> snapshot -> Redis -> Redis (new prefix), with every value type, TTLs and job states."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from redkeep.cache.redis import RedisCache, list_cache_names
from redkeep.config import Settings
from redkeep.migrate import (
    StoreSource,
    migrate,
    open_source,
    open_target,
    parse_endpoint,
    write_snapshot,
)
from redkeep.queue.job import JobStatus
from redkeep.queue.redis import RedisJobQueue, list_queue_names
from redkeep.redis.mux import MuxClient
from tests.migrate.conftest import ODD_KEYS, VALUES, Stores, same_value

SETTINGS = Settings(backend="memory")


async def _to_redis(source_text: str, redis_url: str, prefix: str) -> object:
    source = open_source(parse_endpoint(source_text, option="--from"), SETTINGS)
    target = open_target(parse_endpoint(redis_url, key_prefix=prefix, option="--to"), SETTINGS)
    try:
        return await migrate(source, target)
    finally:
        await source.close()
        await target.close()


async def test_memory_snapshot_redis_redis_round_trip(
    stores: Stores, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    snap = tmp_path / "state.jsonl"
    report = await write_snapshot(snap, *stores.mappings())
    assert report.copied == stores.cache_count + stores.job_count
    lines = snap.read_bytes().splitlines()
    assert orjson.loads(lines[0])["kind"] == "header"
    assert orjson.loads(lines[-1]) == {"kind": "end", "records": len(lines) - 2}

    first, second = f"{prefix}:a", f"{prefix}:b"
    r1 = await _to_redis(str(snap), redis_url, first)
    assert r1.complete and r1.verified  # type: ignore[attr-defined]
    assert r1.copied == stores.cache_count + stores.job_count  # type: ignore[attr-defined]

    source = open_source(parse_endpoint(redis_url, key_prefix=first), SETTINGS)
    target = open_target(parse_endpoint(redis_url, key_prefix=second, option="--to"), SETTINGS)
    try:
        r2 = await migrate(source, target, batch_size=7)
    finally:
        await source.close()
        await target.close()
    assert r2.complete and r2.verified
    assert r2.copied == stores.cache_count + stores.job_count
    assert r2.caches["plain"].target == len(VALUES) + len(ODD_KEYS)
    assert r2.queues["reports"]["failed"].target == 1

    client = MuxClient(redis_url)
    try:
        assert await list_cache_names(client, second) == ["expiring", "plain"]
        assert await list_queue_names(client, second) == ["emails", "reports"]
        plain = RedisCache(client, "plain", key_prefix=second)
        expiring = RedisCache(client, "expiring", key_prefix=second)
        for key, value in VALUES.items():
            got = await plain.get(key, "MISSING")
            assert same_value(got, value), (key, got, value)
            assert await plain.ttl(key) is None
            got = await expiring.get(key, "MISSING")
            assert same_value(got, value), (key, got, value)
            remaining = await expiring.ttl(key)
            assert remaining is not None and 590 < remaining <= 600, (key, remaining)
        for i, key in enumerate(ODD_KEYS):
            assert await plain.get(key) == {"i": i}

        for job_id, original in stores.jobs.items():
            queue = RedisJobQueue(client, original.queue, key_prefix=second)
            got = await queue.get_job(job_id)
            assert got is not None, job_id
            assert got.status == original.status, job_id
            assert got.attempts == original.attempts, job_id
            assert got.priority == original.priority, job_id
            assert got.max_attempts == original.max_attempts, job_id
            assert got.payload == original.payload, job_id
            assert got.result == original.result, job_id
            assert got.error == original.error, job_id
            assert got.worker_id == original.worker_id, job_id
            assert got.backoff == original.backoff, job_id
            assert got.timeout == original.timeout, job_id
            for attr in ("run_at", "created_at", "started_at", "finished_at"):
                want, have = getattr(original, attr), getattr(got, attr)
                if want is None:
                    assert have is None or attr == "run_at", (job_id, attr, have)
                else:
                    assert have is not None and abs(have - want) < 0.002, (job_id, attr, have)
        emails = RedisJobQueue(client, "emails", key_prefix=second)
        counts = await emails.counts()
        assert counts["waiting"] == 3 and counts["delayed"] == 1 and counts["cancelled"] == 1
        waiting = [j.id for j in await emails.list_jobs(JobStatus.WAITING)]
        assert waiting == ["w1", "w0", "w2"]  # priority order survives the copy
        delayed = (await emails.list_jobs(JobStatus.DELAYED))[0]
        assert delayed.run_at is not None and delayed.run_at > time.time() + 3500
    finally:
        await client.close()


async def test_expired_entries_are_not_restored(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    from redkeep.cache.memory import MemoryCache

    cache = MemoryCache("short")
    await cache.set("gone", 1, ttl=0.05)
    await cache.set("kept", 2, ttl=60)
    snap = tmp_path / "s.jsonl"
    await write_snapshot(snap, {"short": cache}, {})
    time.sleep(0.1)
    report = await _to_redis(str(snap), redis_url, prefix)
    tally = report.caches["short"]  # type: ignore[attr-defined]
    assert (tally.source, tally.copied, tally.expired) == (2, 1, 1)
    client = MuxClient(redis_url)
    try:
        target = RedisCache(client, "short", key_prefix=prefix)
        assert await target.get("gone") is None
        assert await target.get("kept") == 2
    finally:
        await client.close()


async def test_store_source_reads_live_memory_stores(
    stores: Stores, redis_url: str, prefix: str
) -> None:
    """A process can migrate its own memory stores straight into Redis (no file)."""

    async def open_stores():  # type: ignore[no-untyped-def]
        return stores.mappings()

    source = StoreSource(open_stores, "memory")
    target = open_target(parse_endpoint(redis_url, key_prefix=prefix, option="--to"), SETTINGS)
    try:
        report = await migrate(source, target, dry_run=True)
        assert report.copied == stores.cache_count + stores.job_count
        client = MuxClient(redis_url)
        try:
            assert await list_cache_names(client, prefix) == []  # dry run wrote nothing
        finally:
            await client.close()
        report = await migrate(source, target)
        assert report.verified and report.copied == stores.cache_count + stores.job_count
        again = await migrate(source, target, dry_run=True)
        assert again.copied == 0 and again.existed == stores.cache_count + stores.job_count
    finally:
        await target.close()
