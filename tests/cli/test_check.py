"""``redkeep check`` against the shared Redis, a closed port, a password-protected private
server, the Upstash emulator, and invalid settings."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import redis as sync_redis
import typer
from tests.support.redis_server import RedisServer, free_port
from typer.testing import CliRunner

from redkeep.cli import COMMAND_MODULES, app

PASSWORD = "cli-check-pw-7Hq2"


def invoke(*args: str, **env: str) -> Any:
    """Run the CLI in-process with only the given redkeep/Upstash variables set."""
    clean: dict[str, str | None] = {
        k: None for k in os.environ if k.upper().startswith(("REDKEEP_", "UPSTASH_"))
    }
    clean.update(env)
    return CliRunner().invoke(app, list(args), env=clean, catch_exceptions=False)


def assert_one_line_error(result: Any, code: int = 1) -> str:
    assert result.exit_code == code
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def test_memory_backend_prints_settings_and_succeeds() -> None:
    result = invoke("check")
    assert result.exit_code == 0, result.output
    assert "REDKEEP_COMMAND_TIMEOUT" in result.stdout
    assert "backend: memory" in result.stdout


def test_memory_backend_json() -> None:
    result = invoke("check", "--json", REDKEEP_COMMAND_TIMEOUT="1.5")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["backend"] == "memory" and doc["connection"] is None
    assert doc["settings"]["command_timeout"] == 1.5


def test_shared_redis_reports_version_and_latency(redis_url: str) -> None:
    with sync_redis.Redis.from_url(redis_url) as r:
        version = r.info("server")["redis_version"]
    result = invoke("check", REDKEEP_REDIS_URL=redis_url)
    assert result.exit_code == 0, result.output
    assert f"server {version}" in result.stdout
    assert "round trip" in result.stdout and " ms" in result.stdout

    result = invoke("check", "--json", REDKEEP_REDIS_URL=redis_url)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["backend"] == "redis"
    assert doc["connection"]["server_version"] == version
    assert doc["connection"]["transport"] == "mux"
    assert 0 < doc["connection"]["latency_ms"] < 5000


def test_closed_port_exits_1_without_the_password() -> None:
    url = f"redis://app:{PASSWORD}@127.0.0.1:{free_port()}/0"
    result = invoke("check", REDKEEP_REDIS_URL=url, REDKEEP_RETRY_ATTEMPTS="0")
    line = assert_one_line_error(result)
    assert "cannot reach redis" in line and "127.0.0.1" in line
    assert PASSWORD not in result.output

    result = invoke("check", "--json", REDKEEP_REDIS_URL=url, REDKEEP_RETRY_ATTEMPTS="0")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and "cannot reach redis" in doc["error"]
    assert PASSWORD not in result.output


def test_wrong_password_is_an_auth_error_without_secrets(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory(requirepass=PASSWORD)
    wrong = "not-the-pw-Kk31"
    result = invoke("check", REDKEEP_REDIS_URL=f"redis://:{wrong}@127.0.0.1:{server.port}/0")
    line = assert_one_line_error(result)
    assert "Auth" in line or "auth" in line.lower()
    assert wrong not in result.output and PASSWORD not in result.output

    result = invoke("check", REDKEEP_REDIS_URL=server.url)
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output


def test_frozen_server_hits_the_timeout(redis_server_factory: Callable[..., RedisServer]) -> None:
    server = redis_server_factory()
    server.pause()  # accepts connections (kernel backlog) but never answers
    try:
        result = invoke(
            "check",
            "--timeout",
            "1",
            REDKEEP_REDIS_URL=server.url,
            REDKEEP_COMMAND_TIMEOUT="5",
            REDKEEP_CONNECT_TIMEOUT="5",
        )
    finally:
        server.resume()
    line = assert_one_line_error(result)
    assert "no answer within 1s" in line


def test_invalid_settings_are_one_line_naming_the_variable() -> None:
    result = invoke("check", REDKEEP_COMMAND_TIMEOUT="-1", REDKEEP_MAX_CONNECTIONS="x")
    line = assert_one_line_error(result, 2)  # bad settings are usage errors (cli/exits.py)
    assert "REDKEEP_COMMAND_TIMEOUT: input should be greater than 0 (got '-1')" in line
    assert "REDKEEP_MAX_CONNECTIONS" in line


@pytest.mark.upstash
def test_upstash_emulator(upstash_emulator: Any) -> None:
    result = invoke(
        "check",
        "--json",
        UPSTASH_REDIS_REST_URL=upstash_emulator.url,
        UPSTASH_REDIS_REST_TOKEN=upstash_emulator.token,
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["backend"] == "upstash" and doc["connection"]["transport"] == "upstash"
    assert upstash_emulator.token not in result.output

    result = invoke(
        "check",
        UPSTASH_REDIS_REST_URL=upstash_emulator.url,
        UPSTASH_REDIS_REST_TOKEN="wrong-token-Zz90",
    )
    assert_one_line_error(result)
    assert "wrong-token-Zz90" not in result.output


def test_every_command_module_registers_its_commands() -> None:
    assert len(COMMAND_MODULES) == len(set(COMMAND_MODULES))
    for name in COMMAND_MODULES:
        fresh = typer.Typer()
        importlib.import_module(name).register(fresh)
        added = len(fresh.registered_commands) + len(fresh.registered_groups)
        assert added > 0, f"{name}.register() added no command"
    names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert "check" in names


def test_python_dash_m_and_script_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "redkeep", "--version"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.startswith("redkeep ")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDKEEP_", "UPSTASH_"))}
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    out = subprocess.run(
        [sys.executable, "-m", "redkeep", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "REDKEEP_REDIS_URL": url, "REDKEEP_RETRY_ATTEMPTS": "0"},
    )
    assert out.returncode == 1
    assert PASSWORD not in out.stdout + out.stderr
    assert out.stderr.startswith("error: cannot reach redis")
