"""Every message docs/troubleshooting.md quotes is one redkeep (or Redis through redkeep)
really produces: each is triggered here against real servers and compared.

A quoted message is a backticked span of three words or more in a **Symptom.** paragraph;
``...`` and ``<name>`` in a quote stand for the part that varies.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from redkeep.cache.manager import CacheManager
from redkeep.config import Settings
from redkeep.errors import ConfigError, QueueFull, RedkeepError
from redkeep.queue.job import Job
from redkeep.queue.memory import MemoryJobQueue
from redkeep.queue.outbox import Outbox
from redkeep.queue.worker import Worker
from redkeep.redis.factory import create_client
from redkeep.redis.mux import MuxClient
from redkeep.services import create_services
from redkeep.web.app import create_app
from redkeep.web.security import exposure_problem
from tests.support.redis_server import free_port

PAGE = Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md"
PASSWORD = "trouble-pw-4417"


def quoted_messages() -> list[str]:
    text = PAGE.read_text(encoding="utf-8")
    spans = [
        span
        for paragraph in re.findall(r"\*\*Symptom\.\*\*(.*?)\n\n", text, re.S)
        for span in re.findall(r"`([^`]+)`", paragraph)
    ]
    spans = [" ".join(s.split()) for s in spans]  # a quote may wrap across lines
    return [s for s in spans if s.count(" ") >= 2 and not s.startswith(("redkeep ", "--"))]


def _pattern(quote: str) -> re.Pattern[str]:
    parts = re.split(r"(\.\.\.|<[a-z]+>)", quote)
    regex = "".join(
        ".*?" if p == "..." else ".+?" if p.startswith("<") else re.escape(p) for p in parts
    )
    return re.compile(regex, re.S)


def _said(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def _fails(call: Any) -> str:
    try:
        await call
    except RedkeepError as exc:
        return _said(exc)
    raise AssertionError("the call did not fail")


async def _server_messages(server: Any, caplog: pytest.LogCaptureFixture) -> list[str]:
    said: list[str] = []
    closed = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", retry_attempts=0)
    client = create_client(closed)
    said.append(await _fails(client.ping()))
    await client.close()
    for url in (server.url_no_auth, server.url.replace(PASSWORD, "wrong-pw")):
        client = create_client(Settings(redis_url=url, retry_attempts=0))
        said.append(await _fails(client.ping()))
        await client.close()

    settings = Settings(
        redis_url=server.url,
        retry_attempts=0,
        command_timeout=0.3,
        connect_timeout=0.5,
        breaker_failure_threshold=1,
        breaker_reset_timeout=0.2,
        health_check_interval=0,
    )
    client = create_client(settings)
    await client.ping()
    server.pause()
    try:
        said.append(await _fails(client.ping()))
    finally:
        server.resume()
    await client.execute("CONFIG", "SET", "maxmemory", "1mb")
    said.append(await _fails(client.execute("SET", "big", "x" * 2_000_000)))
    await client.execute("CONFIG", "SET", "maxmemory", "0")
    noscript = await _fails(client.execute("EVALSHA", "0" * 40, 0))
    said += [noscript, noscript.partition(": ")[2]]  # the server's own reply, as in MONITOR
    await client.close()

    caplog.set_level(logging.INFO, logger="redkeep")
    async with CacheManager(settings) as manager:
        cache = manager.get("sessions")
        await cache.set("k", 1)
        server.kill()
        await cache.get("k")
        server.start()
        for _ in range(100):
            await cache.get("k")
            if "back on Redis" in caplog.text:
                break
            await asyncio.sleep(0.1)
    said.extend(record.getMessage() for record in caplog.records)
    return said


async def _service_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    said: list[str] = []
    try:
        Settings(redis_url="redis://:pa/ss@127.0.0.1:6379/0")
    except ConfigError as exc:
        said.extend(f"{name}: {reason}" for name, reason in exc.problems.items())
    said.append(exposure_problem("0.0.0.0", None, "the service") or "")
    said.append(exposure_problem("0.0.0.0", "short", "the service") or "")
    queue = MemoryJobQueue("default", max_bytes=1000)
    try:
        await queue.enqueue("h", "x" * 2000)
    except QueueFull as exc:
        said.append(_said(exc))
    async with create_services(Settings(backend="memory")) as services:
        app = create_app(services)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
        ) as client:
            answers = [
                await client.get("/v1/queues/q/counts", headers={"Host": "rebind.example"}),
                await client.post("/v1/queues/q/jobs", headers={"Origin": "https://x.example"}),
                await client.post("/v1/queues/q/jobs", content=b"{}"),
            ]
            said.extend(r.json()["error"]["message"] for r in answers)
            ready = (await client.get("/health/ready")).json()
            said.append(ready["components"]["worker"]["hint"])
    said += await _stuck_thread_messages(caplog)
    return said


async def _stuck_thread_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    """A sync handler that outlives its timeout: the job's error and the worker's log line."""
    release = threading.Event()

    def slow(job: Job) -> None:
        release.wait(10)

    queue = MemoryJobQueue("stuck", max_attempts=1)
    worker = Worker(queue, {"slow": slow}, concurrency=1, handle_signals=False)
    caplog.set_level(logging.INFO, logger="redkeep")
    running = asyncio.create_task(worker.run())
    try:
        job = await queue.enqueue("slow", timeout=0.2)
        for _ in range(200):
            done = await queue.get_job(job.id)
            if done is not None and done.finished:
                break
            await asyncio.sleep(0.025)
        assert done is not None and done.error is not None, done
    finally:
        release.set()
        worker.stop()
        await running
    return [f"{done.error.type}: {done.error.message}"] + [r.getMessage() for r in caplog.records]


async def _outbox_messages(directory: Path) -> list[str]:
    said: list[str] = []
    damaged = directory / "damaged.sqlite3"
    damaged.write_bytes(b"not a database at all" * 100)
    said.append(await _fails(Outbox(damaged).open()))
    async with Outbox(directory / "a.sqlite3", namespace="a"):
        pass
    said.append(await _fails(Outbox(directory / "a.sqlite3", namespace="b").open()))
    return said


def _cluster_messages(cluster: Any) -> list[str]:
    async def run() -> list[str]:
        client = MuxClient(cluster.url)  # the single-server client on a cluster node
        try:
            said = [await _fails(client.execute("MGET", "a", "b"))]
            for i in range(50):
                try:
                    await client.execute("GET", f"key-{i}")
                except RedkeepError as exc:
                    said.append(_said(exc))
                    break
            return said
        finally:
            await client.close()

    return asyncio.run(run())


@pytest.mark.cluster
def test_every_quoted_message_is_real(
    redis_server_factory: Any,
    redis_cluster: Any,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    server = redis_server_factory(requirepass=PASSWORD)
    said = asyncio.run(_server_messages(server, caplog))
    said += asyncio.run(_service_messages(caplog))
    said += asyncio.run(_outbox_messages(tmp_path))
    said += _cluster_messages(redis_cluster)
    quotes = quoted_messages()
    assert len(quotes) >= 15, quotes
    unmatched = [q for q in quotes if not any(_pattern(q).match(m) for m in said)]
    assert unmatched == [], f"quoted but never produced: {unmatched}\nproduced: {said}"
