"""The request guard: DNS rebinding (Host), cross-site writes (Origin, content type) and slow or
oversized bodies, through the real app (in-process for headers, a real uvicorn for bodies)."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from tests.web.server import TOKEN, ServerThread, redis_settings

from redkeep.config import Settings
from redkeep.services import create_services
from redkeep.web.app import create_app
from redkeep.web.security import HostPolicy, exposure_problem

JOB = {"name": "echo", "payload": {"x": 1}}


@pytest.fixture
async def app_client() -> AsyncIterator[Callable[..., Any]]:
    """``client(**settings) -> httpx.AsyncClient`` on the app in-process (memory backend)."""
    opened: list[Any] = []

    async def make(*, bind_host: str | None = None, **values: Any) -> httpx.AsyncClient:
        services = create_services(Settings(backend="memory", **values))
        await services.start()
        app = create_app(services, bind_host=bind_host)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000"
        )
        opened.append((client, services))
        return client

    yield make
    for client, services in opened:
        await client.aclose()
        await services.close()


async def test_a_rebound_host_name_gets_nothing(app_client: Callable[..., Any]) -> None:
    client = await app_client()
    rebound = {"Host": "rebind.attacker.example:8000"}
    r = await client.get("/v1/export", headers=rebound)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_host"
    assert (await client.post("/v1/queues/q/jobs", json=JOB, headers=rebound)).status_code == 400
    assert (await client.get("/health/ready", headers=rebound)).status_code == 400
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "10.1.2.3", "LOCALHOST."):
        assert (await client.get("/v1/export", headers={"Host": host})).status_code == 200, host


async def test_configured_and_bound_names_are_answered(app_client: Callable[..., Any]) -> None:
    client = await app_client(
        http_allowed_hosts="api.example.com, .internal.example", bind_host="box.lan"
    )
    for host, status in [
        ("api.example.com", 200),
        ("API.example.com:443", 200),
        ("internal.example", 200),
        ("svc.internal.example", 200),
        ("box.lan:8000", 200),
        ("evil-api.example.com", 400),
        ("xinternal.example", 400),
    ]:
        r = await client.get("/v1/queues/q/counts", headers={"Host": host})
        assert r.status_code == status, host


async def test_with_a_token_any_host_is_answered_unless_names_are_set(
    app_client: Callable[..., Any],
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "Host": "redkeep.svc.cluster.local"}
    open_client = await app_client(api_token=TOKEN)
    assert (await open_client.get("/v1/queues/q/counts", headers=auth)).status_code == 200
    strict = await app_client(api_token=TOKEN, http_allowed_hosts="api.example.com")
    assert (await strict.get("/v1/queues/q/counts", headers=auth)).status_code == 400
    assert HostPolicy(["*"]).allows("anything.example")


async def test_simple_cross_site_requests_cannot_change_state(
    app_client: Callable[..., Any],
) -> None:
    client = await app_client()
    body = b'{"name": "echo"}'
    # What a page on another site can send without a CORS preflight: form and text types.
    for media in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        r = await client.post("/v1/queues/q/jobs", content=body, headers={"content-type": media})
        assert r.status_code == 415, media
        assert r.json()["error"]["type"] == "unsupported_media_type"
    r = await client.post("/v1/queues/q/jobs", content=body)  # a body without a type
    assert r.status_code == 415
    assert (await client.get("/v1/queues/q/counts")).json()["counts"]["waiting"] == 0
    # A body-less POST (what fetch(..., {mode: "no-cors"}) sends) from another origin.
    job = (await client.post("/v1/queues/q/jobs", json=JOB)).json()
    cancel = f"/v1/queues/q/jobs/{job['id']}/cancel"
    for origin in ("https://attacker.example", "null", "http://localhost:3000"):
        r = await client.post(cancel, headers={"Origin": origin})
        assert r.status_code == 403, origin
        assert r.json()["error"]["type"] == "cross_origin"
    assert (await client.get(f"/v1/queues/q/jobs/{job['id']}")).json()["status"] == "waiting"
    # Same origin, JSON, or no Origin at all (curl, scripts): allowed.
    r = await client.post(cancel, headers={"Origin": "http://127.0.0.1:8000"})
    assert r.status_code == 200 and r.json()["cancelled"] is True
    r = await client.put(
        "/v1/caches/c/keys/k",
        content=b'{"value": 1}',
        headers={"content-type": "application/merge-patch+json; charset=utf-8"},
    )
    assert r.status_code == 200


async def test_oversized_content_length_is_refused_before_reading(
    app_client: Callable[..., Any],
) -> None:
    client = await app_client(max_payload_bytes=1000)
    r = await client.put(
        "/v1/caches/c/keys/k", json={"value": "x" * 200_000}, headers={"Connection": "keep-alive"}
    )
    assert r.status_code == 413
    assert r.headers["connection"] == "close"


def test_exposure_rule() -> None:
    assert exposure_problem("127.0.0.1", None) is None
    assert exposure_problem("::1", None) is None
    assert "without an API token" in (exposure_problem("0.0.0.0", None) or "")
    assert "shorter than 16" in (exposure_problem("0.0.0.0", "short-token") or "")
    assert exposure_problem("0.0.0.0", "x" * 16) is None


# -- slow clients, on a real socket -------------------------------------------------------------
def _raw(server: ServerThread, head: bytes, body: bytes) -> tuple[bytes, float]:
    """Send ``head`` and ``body`` and read the answer until the server closes the connection."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(head + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks), time.monotonic() - started


def test_a_body_that_never_completes_gets_408_and_the_connection_closes(
    serve: Callable[..., ServerThread], redis_url: str, prefix: str
) -> None:
    server = serve(redis_settings(redis_url, prefix, http_body_timeout=0.5))
    body = b'{"name": "echo"}'
    head = (
        b"POST /v1/queues/slow/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )  # the Content-Length lies: only 16 bytes follow
    answer, took = _raw(server, head, body)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer
    assert took < 10
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        assert c.get("/v1/queues/slow/counts").json()["counts"]["waiting"] == 0
