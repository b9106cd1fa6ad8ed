"""The Upstash REST emulator (npm ``@humanwhocodes/upstash-redis-server``) for tests.

It runs with node in front of a private redis-server, bound to 127.0.0.1 on a free port.
``make emulator`` installs the package into ``.tools/upstash``. Note the emulator's limits:
no ``/multi-exec`` endpoint, errors come back as HTTP 500 prefixed with
``Failed to execute Redis command:`` (the client strips it), and only ``/`` checks the token.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.redis_server import HOST, RedisServer, free_port

__all__ = ["EMULATOR_MODULES", "UpstashEmulator", "emulator_missing_reason", "start_emulator"]

ROOT = Path(__file__).resolve().parents[2]
EMULATOR_MODULES = ROOT / ".tools" / "upstash" / "node_modules"
_PACKAGE = EMULATOR_MODULES / "@humanwhocodes" / "upstash-redis-server" / "package.json"
_LAUNCHER = Path(__file__).with_name("upstash_emulator.mjs")


def emulator_missing_reason() -> str | None:
    """Why the emulator cannot run here (None when it can); node missing is the only skip."""
    if shutil.which("node") is None:
        return "node is not installed (the Upstash REST emulator is an npm package; CI has node)"
    return None


@dataclass
class UpstashEmulator:
    """A running emulator: ``url``, ``token``, its backing ``redis`` server and node process."""

    url: str
    token: str
    redis: RedisServer
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.redis.cleanup()


def _ready(url: str, token: str) -> bool:
    try:
        r = httpx.post(url + "/", json=["PING"], headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and r.json().get("result") == "PONG"


def start_emulator(timeout: float = 20.0) -> UpstashEmulator:
    """Start a private redis-server and the emulator in front of it; wait until it answers."""
    if not _PACKAGE.exists():
        raise RuntimeError(f"Upstash emulator not installed at {_PACKAGE}; run `make emulator`")
    redis = RedisServer()
    port = free_port()
    token = secrets.token_urlsafe(16)
    env = dict(
        os.environ,
        URS_MODULES=str(EMULATOR_MODULES),
        URS_TOKEN=token,
        PORT=str(port),
        REDIS_URL=redis.url,
    )
    proc = subprocess.Popen(
        ["node", str(_LAUNCHER)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    emulator = UpstashEmulator(url=f"http://{HOST}:{port}", token=token, redis=redis, proc=proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            emulator.stop()
            raise RuntimeError(f"Upstash emulator exited with code {proc.returncode}")
        if _ready(emulator.url, token):
            return emulator
        time.sleep(0.1)
    emulator.stop()
    raise RuntimeError(f"Upstash emulator did not answer within {timeout}s")
