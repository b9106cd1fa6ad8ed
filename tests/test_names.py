"""The one naming rule for caches and queues (redkeep.names): Python API, HTTP and CLI alike."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from redkeep.cache.memory import MemoryCache
from redkeep.cli import app as cli_app
from redkeep.config import Settings
from redkeep.errors import InvalidJob, InvalidName
from redkeep.names import MAX_NAME_LENGTH, check_name
from redkeep.queue.memory import MemoryJobQueue
from redkeep.services import create_services
from redkeep.web.app import create_app

GOOD = ["a", "Z9", "_private", "sessions.v2", "user-profiles", "x" * MAX_NAME_LENGTH]
BAD = [
    "",
    "c\n",  # re.match with "$" let this one through
    "\nc",
    "a b",
    "a:b",
    "a/b",
    "{a}",
    "q*",
    ".",
    "..",
    "-x",
    "é",
    "x" * (MAX_NAME_LENGTH + 1),
]


@pytest.mark.parametrize("name", GOOD)
def test_good_names_pass_everywhere(name: str) -> None:
    assert check_name(name) == name
    assert MemoryCache(name).name == name
    assert MemoryJobQueue(name).name == name


@pytest.mark.parametrize("name", BAD, ids=repr)
def test_bad_names_fail_everywhere(name: str) -> None:
    with pytest.raises(InvalidName):
        check_name(name)
    with pytest.raises(InvalidName, match="invalid cache name"):
        MemoryCache(name)
    with pytest.raises(InvalidJob, match="invalid queue name"):
        MemoryJobQueue(name)


async def test_http_accepts_exactly_the_same_names() -> None:
    services = create_services(Settings(backend="memory"))
    await services.start()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)), base_url="http://127.0.0.1"
    )
    try:
        longest = "n" * MAX_NAME_LENGTH  # creatable in Python, so reachable over HTTP
        await services.cache(longest).set("k", 1)
        assert (await client.get(f"/v1/caches/{longest}/keys/k")).json()["value"] == 1
        await services.queue(longest).enqueue("echo")
        counts = (await client.get(f"/v1/queues/{longest}/counts")).json()["counts"]
        assert counts["waiting"] == 1
        for bad in ("c%0A", "c%0D%0A", "n" * (MAX_NAME_LENGTH + 1), "a:b", "%20a"):
            r = await client.put(f"/v1/caches/{bad}/keys/k", json={"value": 1})
            assert r.status_code == 400, bad
            assert r.json()["error"] == {
                "type": "invalid_name",
                "message": r.json()["error"]["message"],
                "field": "name",
            }
            assert "1-100 characters" in r.json()["error"]["message"]
            r = await client.post(f"/v1/queues/{bad}/jobs", json={"name": "echo"})
            assert r.status_code == 400 and r.json()["error"]["field"] == "queue", bad
        assert services.caches is not None and services.caches.names() == [longest]
        assert services.queue_names() == [longest]
    finally:
        await client.aclose()
        await services.close()


def test_cli_refuses_the_same_names(redis_url: str, prefix: str) -> None:
    env = {"REDKEEP_REDIS_URL": redis_url, "REDKEEP_KEY_PREFIX": prefix}
    runner = CliRunner()
    result = runner.invoke(cli_app, ["cache", "get", "c\n", "k"], env=env)
    assert result.exit_code == 2 and "invalid cache name" in result.stderr
    result = runner.invoke(cli_app, ["jobs", "list", "-q", "a:b"], env=env)
    assert result.exit_code == 2 and "invalid queue name" in result.stderr
