"""Queue fixtures: ``make_queue`` builds a queue on the backend the test is parametrized with.

Every queue gets the test's unique ``prefix`` and a unique queue name; nothing is flushed.
Every queue test runs with the Lua key guard (``tests/support/lua_keys.py``): each script
refuses, with an error, any command on a key that is not in its KEYS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from redkeep.monitoring import probes
from redkeep.queue import JobQueue, MemoryJobQueue, RedisJobQueue, Worker, scripts
from tests.support.clients import RESP_TRANSPORTS, open_client
from tests.support.lua_keys import guarded
from tests.support.waits import wait_until

BACKENDS = ["memory", *RESP_TRANSPORTS]


@pytest.fixture(autouse=True)
def lua_key_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every queue script (and the depth probe) with the key guard in front."""
    for name in scripts.__all__:
        script = getattr(scripts, name)
        if isinstance(script, scripts.QueueScript):
            monkeypatch.setattr(scripts, name, guarded(script))
    monkeypatch.setattr(probes, "QUEUE_DEPTH", guarded(probes.QUEUE_DEPTH))


QueueFactory = Callable[..., Awaitable[JobQueue]]


@pytest.fixture(params=BACKENDS)
async def make_queue(
    request: pytest.FixtureRequest, prefix: str, redis_url: str
) -> AsyncIterator[QueueFactory]:
    """``await make_queue(**queue_options) -> JobQueue`` on memory and every RESP transport."""
    backend = request.param
    clients: list[Any] = []

    async def factory(**opts: Any) -> JobQueue:
        name = opts.pop("name", f"q-{uuid.uuid4().hex[:8]}")
        if backend == "memory":
            return MemoryJobQueue(name, **opts)
        client = open_client(request, backend)
        clients.append(client)
        return RedisJobQueue(client, name, key_prefix=prefix, **opts)

    factory.backend = backend  # type: ignore[attr-defined]
    try:
        yield factory
    finally:
        for client in clients:
            await client.close()


@contextlib.asynccontextmanager
async def running(
    queue: JobQueue | list[JobQueue], handlers: Mapping[str, Any], **opts: Any
) -> AsyncIterator[Worker]:
    """Run a Worker in the background for the duration of the block, then stop it."""
    opts.setdefault("handle_signals", False)
    worker = Worker(queue, handlers, **opts)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)


async def wait_status(queue: JobQueue, job_id: str, status: str, timeout: float = 10.0) -> Any:
    """Wait until the job reaches ``status`` and return it."""

    async def check() -> bool:
        job = await queue.get_job(job_id)
        return job is not None and job.status == status

    await wait_until(check, timeout, what=f"job {job_id} to be {status}")
    return await queue.get_job(job_id)


WORKER = Path(__file__).with_name("worker_proc.py")


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Any]:
    """Start worker_proc.py subprocesses; each is killed by PID at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(url: str, prefix: str, queue: str, lease: float) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"worker-{len(procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), url, prefix, queue, str(lease)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        proc.log_path = tmp_path / f"worker-{len(procs)}.log"  # type: ignore[attr-defined]
        procs.append(proc)
        return proc

    try:
        yield spawn
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
