"""docs/getting-started.md runs as printed: its Python blocks, and its worker with a real
`redkeep worker` process (Redis)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "getting-started.md"


def _blocks() -> list[str]:
    return [str(b) for b in re.findall(r"```python\n(.*?)```", PAGE.read_text("utf-8"), re.S)]


def _env(redis_url: str | None, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDKEEP_", "UPSTASH_"))}
    env["REDKEEP_KEY_PREFIX"] = prefix
    if redis_url is not None:
        env["REDKEEP_REDIS_URL"] = redis_url
    return env


def _run(code: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_first_cache_and_first_job(
    backend: str, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    cache, job = _blocks()[:2]
    env = _env(redis_url if backend == "redis" else None, prefix)
    assert _run(cache, env, tmp_path) == "1.08 2024-05-01 12:00:00 default"
    assert _run(job, env, tmp_path) == "completed {'sent_to': 'ada@example.com'}"


def test_first_worker_in_its_own_process(redis_url: str, prefix: str, tmp_path: Path) -> None:
    module, producer = _blocks()[2:4]
    assert module.startswith("# myapp/jobs.py\n")
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "jobs.py").write_text(module)
    command = re.search(r"redkeep (worker myapp\.jobs:handlers [^\n]*)", PAGE.read_text("utf-8"))
    assert command is not None
    env = _env(redis_url, prefix)
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "redkeep", *command.group(1).split()],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            assert _run(producer, env, tmp_path) == "completed {'sent_to': 'ada@example.com'}"
        finally:
            worker.terminate()
            assert worker.wait(30) == 0, (tmp_path / "worker.log").read_text()
