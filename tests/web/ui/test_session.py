"""Dashboard access: login with the API token, the session cookie, CSRF tokens on actions,
logout, security headers, and that the /ui exemption from the bearer token opens nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest
from tests.web.server import TOKEN
from tests.web.ui.conftest import ORIGIN

from redkeep.web.ui import session as session_module
from redkeep.web.ui.guard import safe_next
from redkeep.web.ui.render import CSP
from redkeep.web.ui.session import COOKIE, Sessions


async def test_pages_need_a_login_that_sets_a_strict_http_only_cookie(ui_app: Any) -> None:
    ui = await ui_app(redis=False)
    r = await ui.http.get("/ui/queues/emails?status=failed")
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=/ui/queues/emails%3Fstatus%3Dfailed"
    login = await ui.http.get(r.headers["location"])
    assert login.status_code == 200 and 'name="token"' in login.text
    r = await ui.http.post("/ui/login", json={"token": TOKEN, "next": "/ui/queues/emails"})
    assert r.status_code == 200
    assert r.json() == {"message": "logged in", "redirect": "/ui/queues/emails"}
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for flag in ("HttpOnly", "SameSite=strict", "Path=/ui", "Max-Age=28"):
        assert flag in cookie
    assert TOKEN not in cookie and "Secure" not in cookie  # plain http here
    assert (await ui.http.get("/ui/queues/emails")).status_code == 200
    # logged in: the login page sends you on
    assert (await ui.http.get("/ui/login?next=/ui/workers")).headers["location"] == "/ui/workers"


async def test_over_https_the_cookie_is_secure(ui_app: Any) -> None:
    ui = await ui_app(redis=False)
    ui.http.base_url = "https://127.0.0.1:8443"  # the scheme uvicorn sees behind a TLS proxy
    r = await ui.http.post("/ui/login", json={"token": TOKEN})
    assert r.status_code == 200 and "Secure" in r.headers["set-cookie"]


async def test_a_wrong_token_sets_no_cookie(ui_app: Any) -> None:
    ui = await ui_app(redis=False)
    r = await ui.http.post("/ui/login", json={"token": TOKEN + "x"})
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "invalid_token"
    assert "set-cookie" not in r.headers
    assert (await ui.http.get("/ui/")).status_code == 303


async def test_actions_need_the_csrf_token_of_their_session(ui_app: Any) -> None:
    ui = await ui_app(redis=False)
    job = await ui.services.queue("q").enqueue("x")
    path = f"/ui/queues/q/jobs/{job.id}/cancel"
    assert (await ui.act(path)).status_code == 401  # no session at all
    await ui.login()
    other = await ui_app(redis=False)  # same token, another session's CSRF token
    await other.login()
    for token in ("", "forged", other.csrf):
        r = await ui.act(path, **{"X-CSRF-Token": token})
        assert r.status_code == 403, token
        assert r.json()["error"]["type"] == "csrf_failed"
    r = await ui.http.post(path, json={}, headers={"Origin": ORIGIN})  # no header
    assert r.status_code == 403
    assert (await ui.services.queue("q").get_job(job.id)).status == "waiting"  # type: ignore[union-attr]
    r = await ui.act(path)
    assert r.status_code == 200 and r.json()["message"] == f"job {job.id} cancelled"


async def test_cross_site_and_form_posts_are_refused_before_the_csrf_check(ui_app: Any) -> None:
    ui = await ui_app(redis=False)
    await ui.login()
    job = await ui.services.queue("q").enqueue("x")
    path = f"/ui/queues/q/jobs/{job.id}/delete"
    r = await ui.act(path, Origin="http://127.0.0.1:9999")  # another origin, even with the token
    assert r.status_code == 403 and r.json()["error"]["type"] == "cross_origin"
    r = await ui.http.post(
        path, content=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 415
    assert await ui.services.queue("q").get_job(job.id) is not None


async def test_logout_ends_the_session_even_for_a_copied_cookie(ui_app: Any) -> None:
    ui = await ui_app(redis=False)
    await ui.login()
    copied = ui.http.cookies.get(COOKIE, path="/ui")
    async with ui.other_browser({COOKIE: copied}) as thief:
        assert (await thief.get("/ui/")).status_code == 200
        r = await ui.act("/ui/logout")
        assert (await thief.get("/ui/")).status_code == 303  # revoked, not only deleted
    assert r.status_code == 200 and r.json()["redirect"] == "/ui/login"
    assert f'{COOKIE}=""' in r.headers["set-cookie"] and "Max-Age=0" in r.headers["set-cookie"]
    assert (await ui.http.get("/ui/")).status_code == 303


def test_tampered_expired_and_foreign_cookies_are_refused(monkeypatch: Any) -> None:
    store = Sessions("a-token-of-twenty-chars", ttl=60)
    session = store.issue()
    assert store.read(session.cookie) == session.__class__(
        session.id, session.expires, session.csrf, session.cookie
    )
    sid, expires, signature = session.cookie.split(".")
    assert store.read(f"{sid}.{int(expires) + 3600}.{signature}") is None  # extended expiry
    assert store.read(f"x{sid}.{expires}.{signature}") is None
    assert store.read(session.cookie[:-2]) is None
    assert store.read("") is None and store.read("a.b.c") is None and store.read(None) is None
    assert Sessions("another-token-of-twenty", ttl=60).read(session.cookie) is None
    assert Sessions("a-token-of-twenty-chars", ttl=60).read(session.cookie) is not None
    later = time.time() + 61
    monkeypatch.setattr(session_module.time, "time", lambda: later)
    assert store.read(session.cookie) is None


async def test_without_a_token_a_session_is_handed_out_and_actions_still_need_csrf(
    ui_app: Any,
) -> None:
    ui = await ui_app(redis=False, api_token=None)
    r = await ui.http.get("/ui/")
    assert r.status_code == 200 and COOKIE in r.headers["set-cookie"]
    assert "Log out" not in r.text
    assert (await ui.http.get("/ui/login")).headers["location"] == "/ui/"
    job = await ui.services.queue("q").enqueue("x")
    assert (await ui.act(f"/ui/queues/q/jobs/{job.id}/delete")).status_code == 403
    await ui.refresh_csrf()
    assert (await ui.act(f"/ui/queues/q/jobs/{job.id}/delete")).status_code == 200
    assert await ui.services.queue("q").get_job(job.id) is None


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ui/queues/a?status=failed", "/ui/queues/a?status=failed"),
        ("https://evil.example/", "/ui/"),
        ("//evil.example/ui/", "/ui/"),
        ("/ui//evil.example", "/ui/"),
        ("/ui/\\evil", "/ui/"),
        ("/ui/login?next=/ui/", "/ui/"),
        ("/v1/export", "/ui/"),
        ("/ui/a\r\nSet-Cookie: x=1", "/ui/"),
        (None, "/ui/"),
    ],
)
def test_after_login_only_dashboard_paths_are_followed(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


async def test_every_dashboard_response_carries_the_security_headers(ui_app: Any) -> None:
    ui = await ui_app(redis=False)
    responses = [
        await ui.http.get("/ui/"),  # redirect to the login page
        await ui.http.get("/ui/login"),
        await ui.http.get("/ui/static/dashboard.js"),
        await ui.http.post("/ui/login", json={"token": "nope"}),
    ]
    await ui.login()
    job = await ui.services.queue("q").enqueue("x")
    responses += [
        await ui.http.get("/ui/"),
        await ui.http.get("/ui/", headers={"X-Redkeep-Fragment": "queues"}),
        await ui.http.get(f"/ui/queues/q/jobs/{job.id}"),
        await ui.http.get("/ui/queues/q/jobs/missing"),
        await ui.http.get("/ui/static/nothing.js"),
        await ui.act(f"/ui/queues/q/jobs/{job.id}/retry"),  # 409: not failed
        await ui.act(f"/ui/queues/q/jobs/{job.id}/cancel"),
    ]
    assert [r.status_code for r in responses] == [
        303,
        200,
        200,
        401,
        200,
        200,
        200,
        404,
        404,
        409,
        200,
    ]
    for r in responses:
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
    assert "unsafe-inline" not in CSP and "frame-ancestors 'none'" in CSP
    assert "script-src 'self'" in CSP and "http" not in CSP  # no other host


async def test_the_ui_exemption_opens_neither_the_api_nor_other_paths(ui_app: Any) -> None:
    ui = await ui_app(redis=False)
    await ui.login()
    assert (await ui.http.get("/v1/queues/q/counts")).status_code == 401  # cookie is not a token
    assert (await ui.http.get("/v1/workers")).status_code == 401
    assert (await ui.http.get("/metrics")).status_code == 401
    r = await ui.http.get("/uiv1/queues/q/counts")
    assert r.status_code == 404


async def test_the_dashboard_can_be_turned_off(ui_app: Any) -> None:
    ui = await ui_app(redis=False, ui_enabled=False)
    for path in ("/ui", "/ui/", "/ui/login", "/ui/static/dashboard.css"):
        assert (await ui.http.get(path)).status_code == 404, path
    assert (await ui.http.post("/ui/login", json={"token": TOKEN})).status_code == 404


def test_without_jinja2_the_api_still_serves_and_ui_says_what_to_install() -> None:
    code = """
import sys
sys.modules["jinja2"] = None  # as if it were not installed
import asyncio, httpx
from redkeep.config import Settings
from redkeep.services import create_services
from redkeep.web.app import create_app

async def main():
    async with create_services(Settings(backend="memory")) as services:
        transport = httpx.ASGITransport(app=create_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            r = await c.get("/ui/")
            print(r.status_code, r.json()["error"]["message"])
            print((await c.get("/v1/queues/q/counts")).status_code)

asyncio.run(main())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDKEEP_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    ui_line, api_line = done.stdout.strip().splitlines()
    assert ui_line.startswith("404 the dashboard needs Jinja2 (pip install 'redkeep[server]')")
    assert api_line == "200"
