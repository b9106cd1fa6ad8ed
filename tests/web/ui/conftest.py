"""Fixtures of the dashboard tests: the app in-process (``ui_app``) for HTTP-level tests, and a
real uvicorn with a worker for the browser tests (see test_browser.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from tests.web.server import TOKEN

from redkeep.config import Settings
from redkeep.services import Services, create_services
from redkeep.web.app import create_app

ORIGIN = "http://127.0.0.1:8000"


class UiClient:
    """An httpx client on the app in-process, with the services behind it."""

    def __init__(self, client: httpx.AsyncClient, services: Services, app: Any) -> None:
        self.http = client
        self.services = services
        self.app = app
        self.csrf = ""

    def other_browser(self, cookies: dict[str, str] | None = None) -> httpx.AsyncClient:
        """A second client on the same app (its own cookie jar); close it after use."""
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=ORIGIN, follow_redirects=False
        )
        for name, value in (cookies or {}).items():
            client.cookies.set(name, value, domain="127.0.0.1", path="/ui")
        return client

    async def login(self, token: str = TOKEN) -> None:
        r = await self.http.post("/ui/login", json={"token": token})
        assert r.status_code == 200, r.text
        await self.refresh_csrf()

    async def refresh_csrf(self) -> str:
        page = await self.http.get("/ui/")
        assert page.status_code == 200, page.text
        found = re.search(r'<meta name="csrf-token" content="([^"]*)"', page.text)
        assert found is not None
        self.csrf = found.group(1)
        return self.csrf

    async def act(self, path: str, body: dict[str, Any] | None = None, **headers: str) -> Any:
        """POST an action the way the dashboard's script does."""
        sent = {"X-CSRF-Token": self.csrf, "Origin": ORIGIN, **headers}
        return await self.http.post(path, json=body or {}, headers=sent)


@pytest.fixture
async def ui_app(redis_url: str, prefix: str) -> AsyncIterator[Callable[..., Any]]:
    """``await ui_app(redis=True, **settings) -> UiClient``; the API token is set unless
    ``api_token=None`` is given."""
    opened: list[UiClient] = []

    async def make(*, redis: bool = True, **values: Any) -> UiClient:
        values.setdefault("api_token", TOKEN)
        if redis:
            values.setdefault("redis_url", redis_url)
            values.setdefault("key_prefix", prefix)
            values.setdefault("backend", "redis")
            values.setdefault("queue_backoff_base", 0.05)
        else:
            values.setdefault("backend", "memory")
        services = create_services(Settings(**values))
        await services.start()
        app = create_app(services)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=ORIGIN, follow_redirects=False
        )
        ui = UiClient(client, services, app)
        opened.append(ui)
        return ui

    yield make
    for ui in opened:
        await ui.http.aclose()
        await ui.services.close()
