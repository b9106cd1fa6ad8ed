"""The README's library example runs as printed (memory backend and a real Redis)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
