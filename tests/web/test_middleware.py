"""Auth and metrics middleware through the real app in-process (httpx ASGI transport)."""

from __future__ import annotations

import httpx
import pytest

from redkeep.config import Settings
from redkeep.services import Services, create_services
from redkeep.web.app import api_token, create_app
from redkeep.web.security import is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_blank_token_counts_as_unset() -> None:
    assert api_token(Settings(backend="memory", api_token="  ")) is None
    assert api_token(Settings(backend="memory", api_token="abc")) == "abc"


async def _client(token: str | None) -> tuple[httpx.AsyncClient, Services]:
    services = create_services(Settings(backend="memory", api_token=token))
    await services.start()
    app = create_app(services)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
    return client, services


async def test_auth_schemes() -> None:
    client, services = await _client("tok-123456")
    try:
        r = await client.get("/v1/queues/default/counts", headers={"Authorization": "Basic abc"})
        assert r.status_code == 401
        assert r.json()["error"]["message"] == "missing bearer token"
        r = await client.get(
            "/v1/queues/default/counts", headers={"Authorization": "bearer tok-123456"}
        )
        assert r.status_code == 200  # the scheme is case-insensitive
        r = await client.get(
            "/v1/queues/default/counts", headers={"Authorization": "Bearer tok-12345"}
        )
        assert r.status_code == 401
        assert r.json()["error"]["message"] == "invalid bearer token"
        assert (await client.get("/health/ready")).status_code == 200
    finally:
        await client.aclose()
        await services.close()


async def test_open_api_without_token() -> None:
    client, services = await _client(None)
    try:
        assert (await client.get("/v1/queues/default/counts")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
    finally:
        await client.aclose()
        await services.close()
