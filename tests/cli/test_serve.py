"""`redkeep serve`, `redkeep worker` and `redkeep health` as real subprocesses.

The first test is the `make serve` smoke test: the service on memory backends with the example
handlers, a job enqueued over HTTP completes, SIGTERM stops the process cleanly. Refusals that
happen before anything starts (bad arguments, missing settings) run in-process (``invoke``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.redis_server import free_port
from typer.testing import CliRunner

from redkeep.cli import app

PASSWORD = "cli-secret-pass-55"


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDKEEP_", "UPSTASH_"))}
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.log = cwd / f"proc-{time.monotonic_ns()}.log"
        self._out = self.log.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "redkeep", *args],
            env=env,
            cwd=cwd,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        finally:
            if self.popen.poll() is None:
                self.popen.kill()
                self.popen.wait(5)
            self._out.close()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        if p.popen.poll() is None:
            p.popen.kill()
            p.popen.wait(5)


def start(procs: list[Proc], args: list[str], env: dict[str, str], cwd: Path) -> Proc:
    p = Proc(args, env, cwd)
    procs.append(p)
    return p


def wait_live(p: Proc, url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert p.popen.poll() is None, p.output()
        try:
            if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"service did not come up:\n{p.output()}")


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 30) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "redkeep", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def invoke(args: list[str], **env: str) -> Any:
    """Run the CLI in-process with only the given redkeep/Upstash variables set."""
    clean: dict[str, str | None] = {
        k: None for k in os.environ if k.upper().startswith(("REDKEEP_", "UPSTASH_"))
    }
    clean.update(env)
    return CliRunner().invoke(app, args, env=clean, catch_exceptions=False)


def test_make_serve_smoke(tmp_path: Path, procs: list[Proc]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    p = start(procs, ["serve", "--port", str(port)], clean_env(tmp_path), tmp_path)
    wait_live(p, url)
    r = httpx.post(f"{url}/v1/queues/examples/jobs", json={"name": "echo", "payload": {"hi": 1}})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 10
    while (job := httpx.get(f"{url}/v1/queues/examples/jobs/{job_id}").json())["status"] != (
        "completed"
    ):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["result"] == {"hi": 1}
    assert run(["health", url], clean_env(tmp_path), tmp_path).returncode == 0
    assert p.stop() == 0
    out = p.output()
    assert out.count("do NOT survive a restart") == 1
    assert "Traceback" not in out


def test_serve_refuses_public_address_without_token() -> None:
    result = invoke(["serve", "--host", "0.0.0.0", "--port", str(free_port())])
    assert result.exit_code == 2
    assert "REDKEEP_API_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_strict_startup_without_redis_exits_with_clear_error(tmp_path: Path) -> None:
    env = clean_env(
        tmp_path,
        REDKEEP_REDIS_URL=f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0",
        REDKEEP_STARTUP="strict",
        REDKEEP_CONNECT_TIMEOUT="0.5",
        REDKEEP_CONNECT_MAX_WAIT="1",
        REDKEEP_RETRY_ATTEMPTS="0",
    )
    result = run(["serve", "--port", str(free_port())], env, tmp_path)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "strict startup" in output and "REDKEEP_CONNECT_MAX_WAIT=1" in output
    assert "Traceback" not in output
    assert PASSWORD not in output


def test_degraded_service_reports_not_ready_to_health_command(
    tmp_path: Path, procs: list[Proc]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env(
        tmp_path,
        REDKEEP_REDIS_URL=f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0",
        REDKEEP_CONNECT_TIMEOUT="0.5",
        REDKEEP_CONNECT_MAX_WAIT="0.5",
        REDKEEP_RETRY_ATTEMPTS="0",
    )
    p = start(procs, ["serve", "--port", str(port)], env, tmp_path)
    wait_live(p, url)
    result = run(["health", url], clean_env(tmp_path), tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "NOT READY" in result.stdout
    assert PASSWORD not in result.stdout
    assert p.stop() == 0
    assert PASSWORD not in p.output()


def test_health_command_unreachable(tmp_path: Path) -> None:
    result = run(["health", f"http://127.0.0.1:{free_port()}"], clean_env(tmp_path), tmp_path)
    assert result.returncode == 1  # Docker's HEALTHCHECK reserves 2
    assert "unreachable" in result.stderr


MYJOBS = """
def double(job):
    return job.payload * 2

handlers = {"double": double}
"""


def run_one_job(p: Proc, redis_url: str, prefix: str, queue: str, payload: Any) -> Any:
    """Enqueue ``double(payload)`` on ``queue`` and wait for the worker ``p`` to finish it."""
    import asyncio

    from redkeep.queue.redis import RedisJobQueue
    from redkeep.redis.mux import MuxClient

    async def enqueue_and_wait() -> Any:
        client = MuxClient(redis_url)
        try:
            q = RedisJobQueue(client, queue, key_prefix=prefix)
            job = await q.enqueue("double", payload)
            deadline = time.monotonic() + 20
            while True:
                got = await q.get_job(job.id)
                assert got is not None
                if got.status == "completed" or time.monotonic() > deadline:
                    return got
                assert p.popen.poll() is None, p.output()
                await asyncio.sleep(0.05)
        finally:
            await client.close()

    return asyncio.run(enqueue_and_wait())


def test_worker_runs_user_handlers(
    tmp_path: Path, procs: list[Proc], redis_url: str, prefix: str
) -> None:
    (tmp_path / "myjobs.py").write_text(MYJOBS)
    env = clean_env(tmp_path, REDKEEP_REDIS_URL=redis_url, REDKEEP_KEY_PREFIX=prefix)
    p = start(procs, ["worker", "myjobs:handlers", "--queue", "math"], env, tmp_path)
    job = run_one_job(p, redis_url, prefix, "math", 21)
    assert job.status == "completed", p.output()
    assert job.result == 42
    assert p.stop() == 0, p.output()


def test_worker_serves_probes_and_its_job_metrics(
    tmp_path: Path, procs: list[Proc], redis_url: str, prefix: str
) -> None:
    (tmp_path / "myjobs.py").write_text(MYJOBS)
    token = "worker-metrics-token-91"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env(
        tmp_path, REDKEEP_REDIS_URL=redis_url, REDKEEP_KEY_PREFIX=prefix, REDKEEP_API_TOKEN=token
    )
    args = ["worker", "myjobs:handlers", "-q", "math", "--http-port", str(port)]
    p = start(procs, args, env, tmp_path)
    wait_live(p, url)
    assert httpx.get(f"{url}/health/ready", timeout=5).status_code == 200
    assert httpx.get(f"{url}/metrics", timeout=5).status_code == 401  # the token guards it
    assert run_one_job(p, redis_url, prefix, "math", 4).result == 8
    auth = {"Authorization": f"Bearer {token}"}
    text = httpx.get(f"{url}/metrics", headers=auth, timeout=5).text
    done = 'redkeep_job_duration_seconds_count{handler="double",queue="math",status="completed"}'
    assert f"{done} 1.0" in text, text
    assert 'redkeep_queue_jobs{queue="math",status="completed"} 1.0' in text
    assert p.stop() == 0, p.output()
    assert "Traceback" not in p.output()
    assert token not in p.output()


def test_worker_http_port_taken_is_a_clear_error(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = clean_env(tmp_path, REDKEEP_REDIS_URL=redis_url, REDKEEP_KEY_PREFIX=prefix)
        result = run(
            ["worker", "redkeep.examples:handlers", "--http-port", str(port)], env, tmp_path
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_rejects_bad_handler_spec_and_memory_backend() -> None:
    url = "redis://127.0.0.1:6379/0"
    result = invoke(["worker", "no_such_module_xyz:handlers"], REDKEEP_REDIS_URL=url)
    assert result.exit_code == 2
    assert "no_such_module_xyz" in result.stderr
    result = invoke(["worker", "redkeep.examples"], REDKEEP_REDIS_URL=url)
    assert result.exit_code == 2
    assert "MODULE:ATTRIBUTE" in result.stderr
    result = invoke(["worker", "redkeep.examples:MAX_SLEEP"], REDKEEP_REDIS_URL=url)
    assert result.exit_code == 2
    assert "mapping" in result.stderr
    result = invoke(["worker", "redkeep.examples:handlers"])
    assert result.exit_code == 2
    assert "REDKEEP_REDIS_URL" in result.stderr


@pytest.mark.parametrize(
    ("args", "token", "why"),
    [
        (["serve", "--host", "0.0.0.0"], "short-token-1", "shorter than 16"),
        (["serve", "--host", "::"], "", "without an API token"),
        (
            ["worker", "redkeep.examples:handlers", "--http-port", "0", "--http-host", "0.0.0.0"],
            "",
            "without an API token",
        ),
        (
            ["worker", "redkeep.examples:handlers", "--http-port", "0", "--http-host", "0.0.0.0"],
            "fifteen-chars!!",
            "shorter than 16",
        ),
    ],
)
def test_public_binds_need_a_long_token(
    redis_url: str, args: list[str], token: str, why: str
) -> None:
    """`serve` and the worker's probe port follow one rule (redkeep.web.security)."""
    result = invoke(args, REDKEEP_REDIS_URL=redis_url, REDKEEP_API_TOKEN=token)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert why in result.stderr
    assert "Traceback" not in result.stderr
    if token:
        assert token not in result.stderr


def test_worker_probes_listen_on_loopback_by_default() -> None:
    import inspect

    from redkeep.cli.worker import worker

    assert inspect.signature(worker).parameters["http_host"].default == "127.0.0.1"
