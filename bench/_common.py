"""What the benchmarks share (``from _common import ...``: run them as ``bench/<name>.py``): a
private redis-server on a free loopback port, a process's CPU time, the server's script time,
and draining a queue with an in-process worker."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from redkeep.queue import RedisJobQueue, Worker


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_redis(prefix: str = "rk-bench-") -> Iterator[tuple[str, redis.Redis]]:
    """A redis-server of its own (no persistence, its directory under ``/tmp/<prefix>...``) on a
    free loopback port, up and answering: ``(url, a redis-py client)``. Killed by PID at exit."""
    port = free_port()
    tmp = tempfile.mkdtemp(prefix=prefix)
    server = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        r = redis.Redis(port=port)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", r
    finally:
        server.kill()
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def script_usec(r: redis.Redis) -> float:
    """Microseconds the server spent in EVALSHA since the last ``CONFIG RESETSTAT``."""
    stats: dict[str, Any] = r.info("commandstats")
    return float(stats.get("cmdstat_evalsha", {}).get("usec", 0))


async def drain(
    q: RedisJobQueue,
    handlers: Mapping[str, Callable[..., Any]],
    *,
    last_id: str | None = None,
    total: int = 0,
    concurrency: int = 50,
) -> None:
    """Run an in-process worker on ``q`` until job ``last_id`` finished, or (without it) until
    ``total`` jobs completed."""
    worker = Worker(q, handlers, concurrency=concurrency, handle_signals=False)
    task = asyncio.create_task(worker.run())
    try:
        if last_id is not None:
            await q.wait(last_id, timeout=300)
        else:
            while (await q.counts())["completed"] < total:
                await asyncio.sleep(0.01)
    finally:
        worker.stop()
        await task
