"""Interrupted runs resume without copying anything twice; bad snapshot lines are reported."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from redkeep.cache.redis import list_cache_names
from redkeep.config import Settings
from redkeep.migrate import (
    MigrationAborted,
    SnapshotError,
    migrate,
    open_source,
    open_target,
    parse_endpoint,
    write_snapshot,
)
from redkeep.queue.keys import QueueKeys
from redkeep.queue.redis import RedisJobQueue, list_queue_names
from redkeep.redis.mux import MuxClient
from tests.migrate.conftest import Stores

SETTINGS = Settings(backend="memory")


class Interrupted(Exception):
    """Stands in for Ctrl-C / a lost terminal in the middle of a run."""


async def _run(snapshot: Path, redis_url: str, prefix: str, **options: object):  # type: ignore[no-untyped-def]
    source = open_source(parse_endpoint(str(snapshot)), SETTINGS)
    target = open_target(parse_endpoint(redis_url, key_prefix=prefix, option="--to"), SETTINGS)
    try:
        return await migrate(source, target, **options)  # type: ignore[arg-type]
    finally:
        await source.close()
        await target.close()


async def test_resume_after_interruption_copies_nothing_twice(
    stores: Stores, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    snap = tmp_path / "s.jsonl"
    await write_snapshot(snap, *stores.mappings())
    total = stores.cache_count + stores.job_count
    seen: list[int] = []

    def stop_midway(done: int, expected: int | None) -> None:
        assert expected == total
        seen.append(done)
        if done >= 30:
            raise Interrupted

    with pytest.raises(Interrupted):
        await _run(snap, redis_url, prefix, batch_size=10, progress=stop_midway)
    assert seen == [10, 20, 30]

    resumed = await _run(snap, redis_url, prefix, batch_size=10)
    assert resumed.complete and resumed.verified
    assert resumed.existed == 30
    assert resumed.copied == total - 30

    again = await _run(snap, redis_url, prefix)
    assert again.copied == 0 and again.existed == total

    client = MuxClient(redis_url)
    try:
        for name, queue in stores.queues.items():
            target = RedisJobQueue(client, name, key_prefix=prefix)
            assert await target.counts() == await queue.counts()  # no job was added twice
            ids = sorted([j.id async for j in target.dump_jobs()])
            assert ids == sorted([j.id async for j in queue.dump_jobs()])
    finally:
        await client.close()


def _corrupt(path: Path, edits: dict[int, bytes]) -> None:
    lines = path.read_bytes().splitlines()
    for number, text in edits.items():
        lines[number - 1] = text
    path.write_bytes(b"\n".join(lines) + b"\n")


async def test_bad_line_aborts_before_anything_is_written(
    stores: Stores, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    snap = tmp_path / "s.jsonl"
    await write_snapshot(snap, *stores.mappings())
    job_line = next(
        i
        for i, raw in enumerate(snap.read_bytes().splitlines(), start=1)
        if orjson.loads(raw)["kind"] == "job"
    )
    job = orjson.loads(snap.read_bytes().splitlines()[job_line - 1])
    job["job"]["status"] = "exploded"
    _corrupt(snap, {5: b'{"kind": "cache", "cache": "plain", "key": ', job_line: orjson.dumps(job)})

    with pytest.raises(MigrationAborted) as info:
        await _run(snap, redis_url, prefix)
    assert [e.line for e in info.value.errors] == [5, job_line]
    assert "snapshot line 5: not valid JSON" in str(info.value)
    assert "nothing was written" in str(info.value)
    assert "'exploded' is not one of" in info.value.errors[1].reason
    client = MuxClient(redis_url)
    try:
        assert await list_cache_names(client, prefix) == []
        assert await list_queue_names(client, prefix) == []
    finally:
        await client.close()

    report = await _run(snap, redis_url, prefix, on_error="skip")
    assert [e.line for e in report.skipped] == [5, job_line]
    assert report.copied == stores.cache_count + stores.job_count - 2
    assert report.as_dict()["skipped_lines"][0]["line"] == 5


async def test_truncated_snapshot_is_detected(stores: Stores, tmp_path: Path) -> None:
    snap = tmp_path / "s.jsonl"
    await write_snapshot(snap, *stores.mappings())
    lines = snap.read_bytes().splitlines()
    snap.write_bytes(b"\n".join(lines[:10]) + b"\n")  # cut: no end record
    source = open_source(parse_endpoint(str(snap)), SETTINGS)
    count, bad = await source.validate()
    assert count == 9
    assert len(bad) == 1 and bad[0].error is not None
    assert bad[0].error.line == 11 and "truncated" in bad[0].error.reason


async def test_foreign_file_is_rejected(tmp_path: Path) -> None:
    snap = tmp_path / "other.jsonl"
    snap.write_text('{"kind":"header","format":"something-else","version":3}\n')
    _, bad = await open_source(parse_endpoint(str(snap)), SETTINGS).validate()
    errors = [b.error for b in bad if b.error is not None]
    assert isinstance(errors[0], SnapshotError) and errors[0].line == 1
    assert "not a redkeep-snapshot version 1 file" in errors[0].reason


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ({"kind": "cache", "cache": "bad name!", "key": "k", "value": 1}, "invalid cache name"),
        ({"kind": "cache", "cache": "c", "key": "", "value": 1}, "non-empty string 'key'"),
        ({"kind": "cache", "cache": "c", "key": "k"}, "has no 'value'"),
        (
            {"kind": "cache", "cache": "c", "key": "k", "value": 1, "expires_at": "soon"},
            "expires_at",
        ),
        ({"kind": "cache", "cache": "c", "key": "k", "value": {"__rk__": "dt", "v": 5}}, "decoded"),
        ({"kind": "job", "queue": "q{x}", "job": {}}, "invalid queue name"),
        ({"kind": "job", "queue": "q", "job": {"id": "1", "status": "waiting"}}, "'name'"),
        (
            {
                "kind": "job",
                "queue": "q",
                "job": {"id": "1", "name": "n", "status": "waiting", "attempts": "two"},
            },
            "'attempts'",
        ),
        ({"kind": "teapot"}, "unknown record kind"),
        (
            {"kind": "error", "where": "cache 'c' key 'k'", "reason": "boom"},
            "could not export cache 'c' key 'k': boom",
        ),
        ([1, 2], "must be a JSON object"),
    ],
)
async def test_invalid_records_name_the_problem(tmp_path: Path, line: object, reason: str) -> None:
    snap = tmp_path / "s.jsonl"
    body = [
        {"kind": "header", "format": "redkeep-snapshot", "version": 1},
        line,
        {"kind": "end", "records": 1},
    ]
    snap.write_bytes(b"\n".join(orjson.dumps(x) for x in body) + b"\n")
    count, bad = await open_source(parse_endpoint(str(snap)), SETTINGS).validate()
    assert count == 0
    assert len(bad) == 1 and bad[0].error is not None and bad[0].error.line == 2
    assert reason in bad[0].error.reason


async def test_undecodable_value_in_a_live_redis_source(redis_url: str, prefix: str) -> None:
    """Garbage written straight into Redis is reported by cache and key, not a crash."""
    client = MuxClient(redis_url)
    src = f"{prefix}:src"
    try:
        await client.set(f"{src}:cache:c:good", "[1, 2]")
        await client.set(f"{src}:cache:c:bad", "{not json")
        await client.hset(f"{src}:cache:c:hash", {"f": "v"})  # WRONGTYPE for GET
        queue = RedisJobQueue(client, "q", key_prefix=src)
        await queue.enqueue("n", {"ok": 1}, job_id="fine")
        await queue.enqueue("n", {"ok": 2}, job_id="mangled")
        data = '["mangled","n",null]\n{oops'  # the job's data record, its payload damaged
        await client.hset(QueueKeys(src, "q").data, {"mangled": data})
    finally:
        await client.close()

    def run(**options: object):  # type: ignore[no-untyped-def]
        source = open_source(parse_endpoint(redis_url, key_prefix=src), SETTINGS)
        target = open_target(
            parse_endpoint(redis_url, key_prefix=f"{prefix}:dst", option="--to"), SETTINGS
        )

        async def go():  # type: ignore[no-untyped-def]
            try:
                return await migrate(source, target, **options)  # type: ignore[arg-type]
            finally:
                await source.close()
                await target.close()

        return go()

    with pytest.raises(MigrationAborted) as info:
        await run()
    where = info.value.errors[0].where or ""
    assert where in ("cache 'c' key 'bad'", "cache 'c' key 'hash'")
    assert str(info.value).startswith(f"migration aborted: {where}: ")

    report = await run(on_error="skip")
    assert sorted(e.where or "" for e in report.skipped) == [
        "cache 'c' key 'bad'",
        "cache 'c' key 'hash'",
        "queue 'q' job 'mangled'",
    ]
    assert report.queues["q"]["waiting"].copied == 1
    bad = next(e for e in report.skipped if e.where == "cache 'c' key 'bad'")
    assert "not valid JSON" in bad.reason
    assert report.caches["c"].copied + report.caches["c"].existed == 1
