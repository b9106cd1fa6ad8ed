"""Secrets are never echoed by the CLI, whether the value parses or not."""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from redkeep.cli import app

# Passwords with characters that must be percent-encoded in a URL: unencoded, they move the
# "@" out of the URL's host part, so a naive parser echoes (part of) them in its error.
BAD_URLS = {
    "slash": ("redis://:s3c/retPW7@127.0.0.1:6379/0", ["s3c", "retPW7"]),
    "hash": ("redis://app:pa#ssW0rd@127.0.0.1:6379/0", ["pa#ss", "ssW0rd"]),
    "query": ("redis://app:pw?q=zz1x@127.0.0.1:6379/0", ["pw?q", "zz1x"]),
    "digits": ("redis://:12/3456@127.0.0.1:6379/0", ["12/3456", "3456"]),
}
COMMANDS = [
    ["config"],
    ["config", "--json"],
    ["check"],
    ["check", "--json"],
    ["queues"],
    ["serve", "--port", "1"],
    ["worker", "redkeep.examples:handlers"],
]


def invoke(args: list[str], **env: str) -> Any:
    clean: dict[str, str | None] = {
        k: None for k in os.environ if k.upper().startswith(("REDKEEP_", "UPSTASH_"))
    }
    clean.update(env)
    return CliRunner().invoke(app, args, env=clean)


@pytest.mark.parametrize("case", list(BAD_URLS))
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_an_unparseable_redis_url_is_refused_without_echoing_it(case: str, args: list[str]) -> None:
    url, fragments = BAD_URLS[case]
    result = invoke(args, REDKEEP_REDIS_URL=url)
    output = result.stdout + result.stderr
    assert result.exit_code == 2, output
    assert "REDKEEP_REDIS_URL" in output and "percent-encoded" in output
    for fragment in fragments:
        assert fragment not in output
    assert "Traceback" not in output


def test_config_json_hides_upstash_url_credentials() -> None:
    result = invoke(
        ["config", "--json"],
        REDKEEP_UPSTASH_URL="https://default:AXupSecret42@eu1-fine-cat.upstash.io",
        REDKEEP_UPSTASH_TOKEN="AXtoken-not-for-logs-77",
    )
    assert result.exit_code == 0, result.output
    assert "AXupSecret42" not in result.stdout and "AXtoken-not-for-logs-77" not in result.stdout
    data = orjson.loads(result.stdout)
    assert data["upstash_url"] == "https://default:***@eu1-fine-cat.upstash.io"
    assert data["upstash_token"] == "***"
    table = invoke(
        ["config"], REDKEEP_UPSTASH_URL="https://x.upstash.io/?_token=AXquery9", UPSTASH_X="1"
    )
    assert table.exit_code == 0 and "AXquery9" not in table.stdout


@pytest.mark.parametrize("args", [["config"], ["config", "--json"], ["check"]], ids=" ".join)
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://default:Qx7/Zr9@eu1-fine-cat.upstash.io", "percent-encoded"),
        ("https://default:Qx7:Zr9@eu1-fine-cat.upstash.io:99x", "check its host and port"),
    ],
)
def test_an_unparseable_upstash_url_is_refused_without_echoing_it(
    args: list[str], url: str, why: str
) -> None:
    result = invoke(args, REDKEEP_UPSTASH_URL=url, REDKEEP_UPSTASH_TOKEN="AXtoken-not-for-logs-77")
    output = result.stdout + result.stderr
    assert result.exit_code == 2, output
    assert "REDKEEP_UPSTASH_URL" in output and why in output
    for fragment in ("Qx7", "Zr9", "AXtoken"):
        assert fragment not in output
    assert "Traceback" not in output
