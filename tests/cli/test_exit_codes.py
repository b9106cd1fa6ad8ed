"""One table of exit codes (redkeep.cli.exits, docs/deployment.md), and the commands follow it."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from redkeep.cli import app
from redkeep.cli.exits import MEANINGS, ExitCode

DEPLOYMENT = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
_ROW = re.compile(r"^\| (\d+) \| `([A-Z_]+)` \| (.+) \|$")


def invoke(args: list[str], input: str | None = None, **env: str) -> Any:
    clean: dict[str, str | None] = {
        k: None for k in os.environ if k.upper().startswith(("REDKEEP_", "UPSTASH_"))
    }
    clean.update(env)
    return CliRunner().invoke(app, args, env=clean, input=input)


def test_the_documented_table_is_the_code() -> None:
    section = DEPLOYMENT.read_text(encoding="utf-8").split("## Exit codes", 1)[1]
    rows = [m.groups() for line in section.splitlines() if (m := _ROW.match(line))]
    documented = {int(code): (name, meaning) for code, name, meaning in rows}
    assert documented == {code.value: (code.name, MEANINGS[code]) for code in ExitCode}


@pytest.mark.parametrize(
    "args",
    [
        ["config"],
        ["check"],
        ["queues"],
        ["jobs", "show", "x"],
        ["cache", "get", "c", "k"],
        ["migrate", "--from", "settings", "--to", "/tmp/redkeep-never-written.jsonl"],
        ["serve", "--port", "1"],
        ["worker", "redkeep.examples:handlers"],
    ],
    ids=" ".join,
)
def test_invalid_settings_are_a_usage_error_for_every_command(args: list[str]) -> None:
    result = invoke(args, REDKEEP_REDIS_URL="redis://127.0.0.1:6379/0", REDKEEP_BACKEND="nope")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "REDKEEP_BACKEND" in result.output
    assert "Traceback" not in result.output


def test_usage_errors() -> None:
    assert invoke(["queues", "--no-such-option"]).exit_code == ExitCode.USAGE
    assert invoke(["health", "ftp://example"]).exit_code == ExitCode.USAGE
    memory = invoke(["queues"], REDKEEP_BACKEND="memory")
    assert memory.exit_code == ExitCode.USAGE and "REDKEEP_REDIS_URL" in memory.stderr


@pytest.mark.parametrize(
    "args", [["jobs", "purge", "failed", "-q", "mail"], ["cache", "clear", "sessions"]], ids=str
)
def test_a_confirmation_nobody_gives_is_refused(args: list[str], redis_url: str) -> None:
    declined = invoke(args, input="n\n", REDKEEP_REDIS_URL=redis_url)
    assert declined.exit_code == ExitCode.REFUSED
    no_terminal = invoke(args, input="", REDKEEP_REDIS_URL=redis_url)  # end of input at once
    assert no_terminal.exit_code == ExitCode.REFUSED, no_terminal.output
    assert "use --yes" in no_terminal.stderr
