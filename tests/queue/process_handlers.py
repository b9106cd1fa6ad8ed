"""Handlers for the process-pool tests: module-level, so a child process imports them by name."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from redkeep.queue import Job


def echo(job: Job) -> dict[str, Any]:
    """What the child saw, and where it ran."""
    return {
        "payload": job.payload,
        "id": job.id,
        "name": job.name,
        "queue": job.queue,
        "attempts": job.attempts,
        "headers": dict(job.headers),
        "pid": os.getpid(),
    }


def record_pid_and_hang(job: Job) -> None:
    """Write this process's pid to ``payload["pid_file"]``, then never return."""
    Path(job.payload["pid_file"]).write_text(str(os.getpid()))
    while True:
        time.sleep(0.05)


def crash(job: Job) -> None:
    """Die without answering (as a segfault or the OOM killer would)."""
    os._exit(3)


def fail(job: Job) -> None:
    raise ValueError(f"bad input {job.payload!r}")


def noisy(job: Job) -> str:
    print("this goes to stderr, not into the worker's pipe")
    return "quiet"


async def async_double(job: Job) -> int:
    await asyncio.sleep(0)
    return int(job.payload) * 2


def unserializable(job: Job) -> object:
    return object()
