"""Lua storage-layout benchmark (not a test): what a job state change costs inside a script.

The queue's scripts read and rewrite a small per-job state record on every transition (claim,
completion, retry...). This measures the alternatives considered for the v2 layout, each as one
script that performs ``N`` claims (read the record, bump attempts and token, set status, started
and worker, write it back) on jobs stored in one queue:

- ``packed``: the record is one field of a per-queue hash, ``|``-separated, parsed with one
  ``string.match`` and rebuilt with ``..`` (what the queue uses);
- ``cjson``: the same field holding a JSON array (``cjson.decode`` / ``cjson.encode``);
- ``fields``: one per-queue hash per field (``status``, ``attempts``...), no parsing;
- ``keyhash``: v1's layout, one hash key per job (HMGET/HSET of its fields; the key is built
  inside the script, which v2 no longer allows);
- ``packed-batch``: ``packed`` with one HMGET and one HSET for the whole batch of ids.

Each variant runs in batches of 10 jobs (the size of a typical worker claim) and of 1000 jobs
(a bulk operation). Reported: microseconds of script time per job (the server's
``INFO commandstats`` usec for EVALSHA divided by the jobs handled), median of the rounds; the
rounds interleave the variants so that load from other processes hits all alike.

A private ``redis-server`` (no persistence) runs on a free loopback port and is stopped by PID.

    .venv/bin/python bench/lua_layout_bench.py            # env: REDKEEP_BENCH_REPEATS (7)
"""

from __future__ import annotations

import os
import statistics

import redis
from _common import private_redis, script_usec

REPEATS = int(os.environ.get("REDKEEP_BENCH_REPEATS", "7"))
JOBS = 10_000

_CLAIM_PACKED = """
local ids = ARGV
for i = 1, #ids do
  local id = ids[i]
  local rec = redis.call('HGET', KEYS[1], id)
  local st, at, tk, pr, mx, cr, ra, sa, fi, wk = string.match(rec,
    '^(%l+)|(%d+)|(%d+)|(-?%d+)|(%d+)|(%d*)|(%d*)|(%d*)|(%d*)|(.*)$')
  at = tonumber(at) + 1
  tk = tonumber(tk) + 1
  redis.call('HSET', KEYS[1], id, 'active|' .. at .. '|' .. tk .. '|' .. pr .. '|' .. mx .. '|'
    .. cr .. '|' .. ra .. '|' .. '1732700000123' .. '|' .. fi .. '|' .. 'worker-1')
end
return #ids
"""

_CLAIM_PACKED_BATCH = """
local recs = redis.call('HMGET', KEYS[1], unpack(ARGV))
local out = {}
for i = 1, #ARGV do
  local st, at, tk, pr, mx, cr, ra, sa, fi, wk = string.match(recs[i],
    '^(%l+)|(%d+)|(%d+)|(-?%d+)|(%d+)|(%d*)|(%d*)|(%d*)|(%d*)|(.*)$')
  out[#out + 1] = ARGV[i]
  out[#out + 1] = 'active|' .. (tonumber(at) + 1) .. '|' .. (tonumber(tk) + 1) .. '|' .. pr
    .. '|' .. mx .. '|' .. cr .. '|' .. ra .. '|' .. '1732700000123' .. '|' .. fi .. '|'
    .. 'worker-1'
end
redis.call('HSET', KEYS[1], unpack(out))
return #ARGV
"""

_CLAIM_CJSON = """
local ids = ARGV
for i = 1, #ids do
  local id = ids[i]
  local t = cjson.decode(redis.call('HGET', KEYS[1], id))
  t[1] = 'active'
  t[2] = t[2] + 1
  t[3] = t[3] + 1
  t[8] = 1732700000123
  t[10] = 'worker-1'
  redis.call('HSET', KEYS[1], id, cjson.encode(t))
end
return #ids
"""

_CLAIM_FIELDS = """
local ids = ARGV
for i = 1, #ids do
  local id = ids[i]
  local at = redis.call('HGET', KEYS[2], id)
  local tk = redis.call('HGET', KEYS[3], id)
  redis.call('HSET', KEYS[1], id, 'active')
  redis.call('HSET', KEYS[2], id, tonumber(at) + 1)
  redis.call('HSET', KEYS[3], id, tonumber(tk) + 1)
  redis.call('HSET', KEYS[4], id, '1732700000123')
  redis.call('HSET', KEYS[5], id, 'worker-1')
end
return #ids
"""

_CLAIM_KEYHASH = """
local ids = ARGV
for i = 1, #ids do
  local jk = KEYS[1] .. ids[i]
  local f = redis.call('HMGET', jk, 'attempts', 'token')
  redis.call('HSET', jk, 'attempts', (tonumber(f[1]) or 0) + 1, 'token', (tonumber(f[2]) or 0) + 1,
    'status', 'active', 'started', '1732700000123', 'worker', 'worker-1')
end
return #ids
"""


def _fill(r: redis.Redis, variant: str) -> list[str]:
    ids = [f"{i:022d}" for i in range(JOBS)]
    r.flushall()
    pipe = r.pipeline(transaction=False)
    for start in range(0, JOBS, 1000):
        chunk = ids[start : start + 1000]
        if variant in ("packed", "packed-batch"):
            rec = "waiting|0|0|0|3|1732700000000|1732700000000|||"
            pipe.hset("{q}:state", mapping=dict.fromkeys(chunk, rec))
        elif variant == "cjson":
            rec = '["waiting",0,0,0,3,1732700000000,1732700000000,"","",""]'
            pipe.hset("{q}:state", mapping=dict.fromkeys(chunk, rec))
        elif variant == "fields":
            pipe.hset("{q}:status", mapping=dict.fromkeys(chunk, "waiting"))
            pipe.hset("{q}:attempts", mapping=dict.fromkeys(chunk, 0))
            pipe.hset("{q}:token", mapping=dict.fromkeys(chunk, 0))
        else:
            for i in chunk:
                pipe.hset(f"{{q}}:job:{i}", mapping={"status": "waiting", "attempts": 0,
                                                      "token": 0, "priority": 0})  # fmt: skip
    pipe.execute()
    return ids


def _keys(variant: str) -> list[str]:
    if variant == "fields":
        return ["{q}:status", "{q}:attempts", "{q}:token", "{q}:started", "{q}:worker"]
    if variant == "keyhash":
        return ["{q}:job:"]
    return ["{q}:state"]


SCRIPTS = {
    "packed": _CLAIM_PACKED,
    "packed-batch": _CLAIM_PACKED_BATCH,
    "cjson": _CLAIM_CJSON,
    "fields": _CLAIM_FIELDS,
    "keyhash": _CLAIM_KEYHASH,
}


def measure(r: redis.Redis, variant: str, batch: int) -> float:
    """Microseconds of script time per job claimed."""
    ids = _fill(r, variant)
    sha = r.script_load(SCRIPTS[variant])
    keys = _keys(variant)
    r.config_resetstat()
    for start in range(0, JOBS, batch):
        r.evalsha(sha, len(keys), *keys, *ids[start : start + batch])
    return script_usec(r) / JOBS


def main() -> None:
    with private_redis("rk-lua-bench-") as (_, r):
        results: dict[tuple[str, int], list[float]] = {}
        for _ in range(REPEATS):
            for batch in (10, 1000):
                for variant in SCRIPTS:
                    results.setdefault((variant, batch), []).append(measure(r, variant, batch))
        print(f"script time per job claimed, median of {REPEATS} rounds (µs)")
        print(f"{'variant':<14} {'batch 10':>9} {'batch 1000':>11}")
        for variant in SCRIPTS:
            row = [statistics.median(results[(variant, b)]) for b in (10, 1000)]
            print(f"{variant:<14} {row[0]:>9.2f} {row[1]:>11.2f}")


if __name__ == "__main__":
    main()
