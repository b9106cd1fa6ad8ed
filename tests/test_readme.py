"""The README's library example runs as printed (memory backend and a real Redis)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.redis_server import free_port

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "README has no python example"
    return str(blocks[0])


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_readme_library_example_runs(backend: str, redis_url: str, prefix: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDKEEP_", "UPSTASH_"))}
    env["REDKEEP_KEY_PREFIX"] = prefix
    if backend == "redis":
        env["REDKEEP_REDIS_URL"] = redis_url
    done = subprocess.run(
        [sys.executable, "-c", _example()],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'plan': 'pro'} completed {'sent_to': 42}"


def _first_job_block() -> str:
    section = README.read_text(encoding="utf-8").split("## Your first job over HTTP", 1)[1]
    blocks = re.findall(r"```sh\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    assert blocks, "README's first-job section has no sh block"
    return str(blocks[0])


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_readme_first_job_flow_works_literally(
    backend: str, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """`make serve`, then the README's commands as printed (curl + jq, the returned id)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDKEEP_", "UPSTASH_"))}
    if backend == "redis":
        env.update(REDKEEP_REDIS_URL=redis_url, REDKEEP_KEY_PREFIX=prefix)
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-m", "redkeep", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.05)
        script = _first_job_block().replace(":8000", f":{port}")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=README.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        job, _ = json.JSONDecoder().raw_decode(done.stdout)  # curl prints no newline
        assert job["queue"] == "examples" and job["name"] == "echo"
        while job["status"] != "completed":  # the README says: run it again if still active
            assert job["status"] in ("waiting", "active") and time.monotonic() < deadline + 30
            time.sleep(0.05)
            job = httpx.get(f"http://127.0.0.1:{port}/v1/queues/examples/jobs/{job['id']}").json()
        assert job["result"] == {"hello": "world"}
        assert "ok: http://127.0.0.1" in done.stdout.splitlines()[-1]  # redkeep health
    finally:
        serve.terminate()
        serve.wait(30)
        log.close()
