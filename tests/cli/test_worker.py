"""`redkeep worker` as a real subprocess: the process executor, and exiting with a stuck thread."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from redkeep.queue import Job, RedisJobQueue
from redkeep.redis.mux import MuxClient

JOBS = """
import os, time

def whoami(job):
    return os.getpid()

def hang(job):
    if job.payload:
        with open(job.payload, "w") as f:
            f.write(str(os.getpid()))
    time.sleep(3600)

handlers = {"whoami": whoami, "hang": hang}
"""


def _env(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDKEEP_", "UPSTASH_"))}
    env.update(REDKEEP_REDIS_URL=redis_url, REDKEEP_KEY_PREFIX=prefix, PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _start(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    (tmp_path / "jobs.py").write_text(JOBS)
    log = (tmp_path / "worker.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "redkeep", "worker", "jobs:handlers", "-q", "cli", *args],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


async def _run_job(redis_url: str, prefix: str, name: str, status: str, **opts: Any) -> Job:
    client = MuxClient(redis_url)
    try:
        q = RedisJobQueue(client, "cli", key_prefix=prefix)
        job = await q.enqueue(name, **opts)
        deadline = time.monotonic() + 30
        while True:
            got = await q.get_job(job.id)
            assert got is not None
            if got.status == status or time.monotonic() > deadline:
                return got
            await asyncio.sleep(0.05)
    finally:
        await client.close()


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> int | None:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return None


def test_process_executor_runs_sync_handlers_in_child_processes(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    proc = _start(tmp_path, _env(redis_url, prefix), "--executor", "process")
    try:
        job = asyncio.run(_run_job(redis_url, prefix, "whoami", "completed"))
        output = (tmp_path / "worker.log").read_text()
        assert job.status == "completed", output
        assert job.result not in (proc.pid, os.getpid())
        assert "executor=process" in output
    finally:
        code = _stop(proc)
    assert code == 0, (tmp_path / "worker.log").read_text()


def test_sigterm_with_a_stuck_handler_thread_still_exits(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    env = _env(redis_url, prefix, REDKEEP_QUEUE_GRACE_PERIOD="0.5")
    proc = _start(tmp_path, env)
    try:
        opts = {"timeout": 0.3, "max_attempts": 1}
        job = asyncio.run(_run_job(redis_url, prefix, "hang", "failed", **opts))
        assert job.status == "failed" and job.error is not None
        assert job.error.type == "TimeoutError"
    finally:
        code = _stop(proc)
    output = (tmp_path / "worker.log").read_text()
    assert code == 0, output
    assert "1 handler threads still running" in output
    assert "Traceback" not in output


def test_handler_processes_do_not_outlive_a_killed_worker(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    pid_file = tmp_path / "child.pid"
    proc = _start(tmp_path, _env(redis_url, prefix), "--executor", "process")
    try:
        asyncio.run(_enqueue(redis_url, prefix, "hang", str(pid_file)))
        deadline = time.monotonic() + 30
        while not (pid_file.exists() and pid_file.read_text()):
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert child != proc.pid
    finally:
        proc.kill()
        proc.wait(10)
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, "the handler process outlived its worker"
        time.sleep(0.05)


async def _enqueue(redis_url: str, prefix: str, name: str, payload: Any) -> None:
    client = MuxClient(redis_url)
    try:
        await RedisJobQueue(client, "cli", key_prefix=prefix).enqueue(name, payload)
    finally:
        await client.close()


def _alive(pid: int) -> bool:
    """Running (an exited orphan may stay a zombie until init reaps it: that counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
