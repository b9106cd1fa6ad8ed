"""Every Lua script of the package passes every key it touches in KEYS (static check), the
dynamic guard the queue suites run under refuses any other key, and the scripts' headers and
status table agree with the Python side."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import redkeep
from redkeep.cache.lock import RELEASE_SCRIPT
from redkeep.cache.redis import INCR_SCRIPT
from redkeep.errors import BackendResponseError
from redkeep.monitoring.probes import QUEUE_DEPTH
from redkeep.queue import scripts
from redkeep.queue.job import STATUSES
from redkeep.queue.keys import STATIC_NAMES, WORKER_NAMES
from redkeep.redis.base import Script
from tests.support.lua_keys import guarded, key_violations, redis_calls

PACKAGE = Path(redkeep.__file__).parent


def _package_scripts() -> list[Script]:
    found: list[Script] = [QUEUE_DEPTH, INCR_SCRIPT, RELEASE_SCRIPT]
    found += [s for n in scripts.__all__ if isinstance(s := getattr(scripts, n), Script)]
    return found


SCRIPTS = _package_scripts()
LUA_FILES = sorted(PACKAGE.rglob("*.lua"))


def test_every_lua_file_is_a_loaded_script_or_an_included_library() -> None:
    names = {s.name for s in SCRIPTS}
    included = "".join(s.source for s in SCRIPTS)
    for path in LUA_FILES:
        if path.parent.name == "lib":
            assert f"-- @included lib/{path.name}" in included or (
                f"-- @included {path.name}" in included
            ), f"{path} is included by no script"
        else:
            assert path.stem in names, f"{path} is not loaded by the package"
    assert len(LUA_FILES) >= 15


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_every_key_argument_comes_from_keys(script: Script) -> None:
    assert redis_calls(script.source), "no redis.call found: the check would prove nothing"
    assert key_violations(script.source) == []


@pytest.mark.parametrize(
    "source",
    [
        "return redis.call('GET', 'literal')",
        "local k = ARGV[1]\nreturn redis.call('HGET', k, 'f')",
        "return redis.call('DEL', KEYS[1], ARGV[1] .. ':x')",
        "return redis.call('HGET', KEYS[1] .. ARGV[1], 'f')",
        "K.state = ARGV[1]\nreturn redis.call('HGET', K.state, 'f')",
        "return redis.call('SUNIONSTORE', KEYS[1], KEYS[2])",
    ],
)
def test_static_check_flags_keys_not_from_keys(source: str) -> None:
    assert key_violations(source) != []


@pytest.mark.parametrize(
    "script", [s for s in SCRIPTS if isinstance(s, scripts.QueueScript)], ids=lambda s: s.name
)
def test_queue_script_headers_declare_queue_keys(script: scripts.QueueScript) -> None:
    assert script.keys, "no '-- KEYS[n] name' header lines"
    names = {*STATIC_NAMES, "v1index"}
    if script.name.startswith("worker_"):  # the worker registry's scripts
        names = set(WORKER_NAMES)
    assert set(script.keys) <= names
    used = set(re.findall(r"\bK\.([A-Za-z_]\w*)", script.source))
    assert used <= names, used - names


def test_scripts_that_write_are_declared_idempotent() -> None:
    # A transport re-sends only idempotent scripts after a lost reply: every queue write must
    # be one (read.lua and the metrics probe only read).
    readers = {"read", "queue_depth"}
    writers = [s for s in SCRIPTS if isinstance(s, scripts.QueueScript) and s.name not in readers]
    assert all(s.idempotent for s in writers), [s.name for s in writers if not s.idempotent]


def test_lua_status_table_is_the_python_status_set() -> None:
    source = (PACKAGE / "queue/scripts/lib/state.lua").read_text()
    table = re.search(r"local STATUSES = \{(.*?)\}", source, re.S)
    assert table is not None
    assert tuple(re.findall(r"(\w+) = true", table.group(1))) == STATUSES


async def test_guard_refuses_a_key_not_in_keys(resp_client: Any, prefix: str) -> None:
    bad = guarded(Script("bad", "return redis.call('GET', ARGV[1])"))
    with pytest.raises(BackendResponseError, match="lua key guard: GET on a key not in KEYS"):
        await resp_client.evalsha(bad, [f"{prefix}:a"], [f"{prefix}:b"])
    unknown = guarded(Script("unknown", "return redis.call('SUNIONSTORE', KEYS[1], KEYS[1])"))
    with pytest.raises(BackendResponseError, match="has no entry in KEY_ARGS"):
        await resp_client.evalsha(unknown, [f"{prefix}:a"], [])
    good = guarded(
        Script("good", "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])")
    )
    assert await resp_client.evalsha(good, [f"{prefix}:a"], ["v"]) == "v"


def test_queue_suites_run_with_the_guard_in_front() -> None:
    # tests/queue/conftest.py's autouse fixture: the scripts the queue calls are guarded ones
    assert scripts.STEP.source.startswith("local redis = (function(real)")
    assert scripts.ENQUEUE.keys == scripts.ENQUEUE.keys and isinstance(
        scripts.ENQUEUE, scripts.QueueScript
    )


def test_job_status_changes_only_inside_transition() -> None:
    # The hook point for job events and counters: no script or library function other than
    # transition() assigns a job's status, and state records are written only by the core.
    for path in LUA_FILES:
        source = path.read_text()
        assigns = re.findall(r"\b\w+\.status\s*=[^=]", source)
        if path.name == "state.lua":  # transition(), and unlisted() which clears it before one
            body = source[source.index("local function transition(") :]
            body = body[: body.index("\nend\n")]
            assert len(assigns) == 2 and "st.status = to" in body, path
        else:
            assert assigns == [], f"{path.name} sets a status outside transition(): {assigns}"
        writes_state = re.search(r"redis\.call\('H(SET|SETNX|MSET)', K\.state", source)
        assert writes_state is None or path.name in ("state.lua", "records.lua"), path


async def test_a_resent_enqueue_or_cancel_acts_once(resp_client: Any, prefix: str) -> None:
    # The same script call twice, as a transport re-sends it after a lost reply.
    from redkeep.queue import RedisJobQueue

    q = RedisJobQueue(resp_client, "resend", key_prefix=prefix)
    await q.register()
    keys = q.keys.names(scripts.ENQUEUE.keys)
    args = [1, "job-1", "3|0|0|0", '["job-1","x",null]\n{"n":1}']
    first = await resp_client.evalsha(scripts.ENQUEUE, keys, args)
    again = await resp_client.evalsha(scripts.ENQUEUE, keys, args)
    assert isinstance(first, int) and again[2][0] == 1  # the second finds the job: existing
    assert (await q.counts())["waiting"] == 1
    cancel_keys = q.keys.names(scripts.CANCEL.keys)
    replies = [await resp_client.evalsha(scripts.CANCEL, cancel_keys, ["req-9", "job-1"])
               for _ in range(2)]  # fmt: skip
    assert replies == ["waiting", "waiting"]  # the re-send answers what the first did
    assert await resp_client.evalsha(scripts.CANCEL, cancel_keys, ["req-10", "job-1"]) is None
