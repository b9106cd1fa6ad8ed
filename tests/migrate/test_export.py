"""A service on memory backends -> GET /v1/export -> `redkeep migrate` -> Redis, over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from redkeep.cache.redis import RedisCache
from redkeep.cli import app
from redkeep.config import Settings
from redkeep.queue.redis import RedisJobQueue
from redkeep.redis.mux import MuxClient
from tests.web.server import TOKEN, ServerThread, redis_settings


@pytest.fixture
def memory_service() -> Iterator[ServerThread]:
    server = ServerThread(Settings(backend="memory", api_token=TOKEN)).start()
    try:
        yield server
    finally:
        server.stop()


def _fill(url: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
        for key, body in {
            "u1": {"value": {"name": "Ada", "roles": ["admin"]}, "ttl": 300},
            "u2": {"value": [1, 2.5, None, "x"]},
            "a key/with slash": {"value": "text"},
        }.items():
            assert (
                http.put(
                    f"/v1/caches/sessions/keys/{key.replace('/', '%2F')}", json=body
                ).status_code
                == 200
            )
        assert http.put("/v1/caches/counters/keys/hits", json={"value": 41}).status_code == 200
        for body in (
            {"name": "send", "payload": {"to": "a@x"}, "job_id": "j1", "priority": 3},
            {"name": "send", "payload": {"to": "b@x"}, "job_id": "j2"},
            {"name": "send", "payload": None, "job_id": "later", "delay": 3600},
        ):
            assert http.post("/v1/queues/mail/jobs", json=body).status_code == 201


def test_export_requires_the_token(memory_service: ServerThread) -> None:
    with httpx.Client(base_url=memory_service.url, timeout=10) as http:
        assert http.get("/v1/export").status_code == 401


def test_export_stream_is_a_complete_snapshot(memory_service: ServerThread) -> None:
    _fill(memory_service.url)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=memory_service.url, headers=headers, timeout=10) as http:
        resp = http.get("/v1/export")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/x-ndjson")
        lines = [orjson.loads(line) for line in resp.content.splitlines()]
        only = http.get("/v1/export", params={"caches": "counters", "queues": ""})
        only_lines = [orjson.loads(line) for line in only.content.splitlines()]
    assert lines[0]["kind"] == "header" and lines[0]["format"] == "redkeep-snapshot"
    assert lines[-1] == {"kind": "end", "records": 7}
    kinds = [line["kind"] for line in lines[1:-1]]
    assert kinds.count("cache") == 4 and kinds.count("job") == 3
    u1 = next(x for x in lines if x.get("key") == "u1")
    assert u1["value"] == {"name": "Ada", "roles": ["admin"]}
    assert 0 < u1["expires_at"] - time.time() <= 300
    assert [x["cache"] for x in only_lines[1:-1]] == ["counters"]
    assert only_lines[-1] == {"kind": "end", "records": 1}


def test_migrate_from_running_memory_service_to_redis(
    memory_service: ServerThread, redis_url: str, prefix: str
) -> None:
    _fill(memory_service.url)
    runner = CliRunner()
    args = ["migrate", "--from", memory_service.url, "--to", redis_url, "--to-prefix", prefix]
    env = {"REDKEEP_MIGRATE_FROM_TOKEN": TOKEN, "REDKEEP_REDIS_URL": ""}

    denied = runner.invoke(app, [*args, "--json"], env={"REDKEEP_REDIS_URL": ""})
    assert denied.exit_code == 1 and "--from-token" in denied.stderr

    result = runner.invoke(app, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["copied"] == 7 and report["verified"] is True
    assert report["queues"]["mail"]["waiting"]["target"] == 2
    assert TOKEN not in result.output

    again = runner.invoke(app, [*args, "--json"], env=env)
    assert again.exit_code == 0
    assert orjson.loads(again.stdout)["existed"] == 7

    async def check() -> None:
        client = MuxClient(redis_url)
        try:
            sessions = RedisCache(client, "sessions", key_prefix=prefix)
            assert await sessions.get("u1") == {"name": "Ada", "roles": ["admin"]}
            ttl = await sessions.ttl("u1")
            assert ttl is not None and 250 < ttl <= 300
            assert await sessions.ttl("u2") is None
            assert await sessions.get("a key/with slash") == "text"
            assert await RedisCache(client, "counters", key_prefix=prefix).incr("hits") == 42
            mail = RedisJobQueue(client, "mail", key_prefix=prefix)
            assert [j.id for j in await mail.list_jobs("waiting")] == ["j1", "j2"]
            later = await mail.get_job("later")
            assert later is not None and later.status == "delayed"
            assert later.run_at is not None and later.run_at > time.time() + 3500
        finally:
            await client.close()

    asyncio.run(check())


def test_cli_snapshot_round_trip_and_bad_lines(tmp_path: Any, redis_url: str, prefix: str) -> None:
    """`migrate` between a snapshot file and Redis, with --dry-run and both --on-error modes."""
    runner = CliRunner()
    env = {"REDKEEP_REDIS_URL": redis_url, "REDKEEP_KEY_PREFIX": prefix}
    seed = runner.invoke(app, ["cache", "set", "c", "k1", '{"v": 1}', "--ttl", "100"], env=env)
    assert seed.exit_code == 0
    assert runner.invoke(app, ["cache", "set", "c", "k2", "[2]"], env=env).exit_code == 0
    snap = tmp_path / "out.jsonl"

    dump = runner.invoke(
        app, ["migrate", "--from", "settings", "--to", str(snap), "--json"], env=env
    )
    assert dump.exit_code == 0, dump.output
    assert orjson.loads(dump.stdout)["copied"] == 2
    assert len(snap.read_bytes().splitlines()) == 4

    other = f"{prefix}:copy"
    load = ["migrate", "--from", str(snap), "--to", "settings", "--to-prefix", other, "--json"]
    dry = runner.invoke(app, [*load, "--dry-run"], env=env)
    assert dry.exit_code == 0 and orjson.loads(dry.stdout)["dry_run"] is True
    missing = runner.invoke(
        app, ["cache", "get", "c", "k1"], env={**env, "REDKEEP_KEY_PREFIX": other}
    )
    assert missing.exit_code == 3  # the dry run wrote nothing

    lines = snap.read_bytes().splitlines()
    k1 = next(i for i, raw in enumerate(lines) if orjson.loads(raw).get("key") == "k1")
    lines[k1] = b'{"kind": "cache", "cache": "c", "key": "k1", "value": '
    snap.write_bytes(b"\n".join(lines) + b"\n")
    aborted = runner.invoke(app, load, env=env)
    assert aborted.exit_code == 4
    assert f"line {k1 + 1}" in aborted.stderr and "nothing was written" in aborted.stderr
    skipped = runner.invoke(app, [*load, "--on-error", "skip"], env=env)
    assert skipped.exit_code == 5
    body = orjson.loads(skipped.stdout)
    assert body["copied"] == 1 and body["skipped_lines"][0]["line"] == k1 + 1
    got = runner.invoke(
        app, ["cache", "get", "c", "k2", "--json"], env={**env, "REDKEEP_KEY_PREFIX": other}
    )
    assert orjson.loads(got.stdout)["value"] == [2]

    same = runner.invoke(app, ["migrate", "--from", "settings", "--to", "settings"], env=env)
    assert same.exit_code == 2
    bad = runner.invoke(app, ["migrate", "--from", "ftp://x", "--to", "settings"], env=env)
    assert bad.exit_code == 2 and "unknown scheme" in bad.stderr


def test_export_of_a_redis_service_reports_unreadable_values(redis_url: str, prefix: str) -> None:
    """On Redis the export lists what is under the prefix; a corrupt value becomes an error
    record that `migrate` reports (and, with --on-error skip, skips)."""

    async def seed() -> None:
        client = MuxClient(redis_url)
        try:
            await RedisCache(client, "c", key_prefix=prefix).set("good", {"v": 1}, ttl=60)
            await client.set(f"{prefix}:cache:c:bad", "{garbage")
            await RedisJobQueue(client, "q", key_prefix=prefix).enqueue("n", [1], job_id="j")
        finally:
            await client.close()

    asyncio.run(seed())
    server = ServerThread(redis_settings(redis_url, prefix)).start()
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
            lines = [orjson.loads(x) for x in http.get("/v1/export").content.splitlines()]
        kinds = sorted(x["kind"] for x in lines)
        assert kinds == ["cache", "end", "error", "header", "job"]
        error = next(x for x in lines if x["kind"] == "error")
        assert error["where"] == "cache 'c' key 'bad'" and "not valid JSON" in error["reason"]

        runner = CliRunner()
        target = f"{prefix}:copy"
        args = ["migrate", "--from", server.url, "--to", redis_url, "--to-prefix", target]
        env = {"REDKEEP_MIGRATE_FROM_TOKEN": TOKEN, "REDKEEP_REDIS_URL": ""}
        aborted = runner.invoke(app, args, env=env)
        assert aborted.exit_code == 4
        assert "could not export cache 'c' key 'bad'" in aborted.stderr
        skipped = runner.invoke(app, [*args, "--on-error", "skip", "--json"], env=env)
        assert skipped.exit_code == 5
        assert orjson.loads(skipped.stdout)["copied"] == 2
    finally:
        server.stop()
