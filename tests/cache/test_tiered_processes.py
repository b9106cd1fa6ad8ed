"""Three processes share one tiered cache: one writes, two read through their own L1.

The invalidation connections are killed (CLIENT KILL on a private redis-server) several times
while they run. Every read must respect the staleness bound (see tests/cache/tiered_proc.py),
the L1s must actually serve reads, and every reader must converge once the writer stops.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.cache.test_tiered import kill_tracking
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 3.0
MAX_LAG = 0.25


def spawn(role: str, url: str, prefix: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.cache.tiered_proc", role, url, prefix, str(SECONDS),
         str(MAX_LAG)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def wait_ready(proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = proc.stdout.readline()  # "ready" once its channel is up (bounded by the child)
    assert line.strip() == "ready", (line, proc.stderr.read() if proc.stderr else "")
    assert time.monotonic() < deadline


def test_writes_in_one_process_reach_the_l1_of_two_others_under_channel_kills(
    redis_server_factory: Callable[..., RedisServer], prefix: str
) -> None:
    server = redis_server_factory()
    procs = {
        "writer": spawn("writer", server.url, prefix),
        "reader1": spawn("reader", server.url, prefix),
        "reader2": spawn("reader", server.url, prefix),
    }
    try:
        for proc in procs.values():
            wait_ready(proc)
        kills = 0
        for _ in range(4):  # bounded: four rounds of kills while the processes run
            time.sleep(0.5)
            kills += kill_tracking(server)
        results = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            results[name] = json.loads(out.strip().splitlines()[-1])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert kills >= 2 * 3  # each round kills the three connections that are up
    assert results["writer"]["writes"] > 100
    for name in ("reader1", "reader2"):
        r = results[name]
        assert r["violations"] == 0, (name, r)
        assert r["not_converged"] == 0, (name, r)
        assert r["channel_losses"] >= 2, (name, r)  # it saw its connection die
        assert r["l1_hits"] > 0.2 * r["reads"], (name, r)  # the L1 did serve reads
        assert r["l1_invalidations"] > 0, (name, r)
