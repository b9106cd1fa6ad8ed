"""Who may see and act on the dashboard: the session gate of pages and of actions.

Pages need a session (with an API token: a login; without: one is handed out). Actions (POSTs)
need a session and its CSRF token in ``X-CSRF-Token``; the request guard of
:mod:`redkeep.web.security` has already refused cross-site and non-JSON POSTs. Errors of page
routes render as HTML pages, those of actions as the API's JSON error body; both carry the
dashboard's security headers (:class:`UiRoute`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

import orjson
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from redkeep.web.app import api_token
from redkeep.web.errors import ApiError, map_exception
from redkeep.web.routing import services
from redkeep.web.ui.render import FRAGMENT_HEADER, render, secured
from redkeep.web.ui.session import COOKIE, CSRF_HEADER, Session, Sessions

__all__ = [
    "LoginRequired",
    "UiRoute",
    "action_session",
    "page_session",
    "require_enabled",
    "safe_next",
    "sessions",
]


class LoginRequired(Exception):
    """A page was asked for without a valid session: the answer is the login page."""


def sessions(request: Request) -> Sessions:
    """The app's :class:`Sessions` (made on first use from its settings)."""
    state = request.app.state
    found: Sessions | None = getattr(state, "ui_sessions", None)
    if found is None:
        settings = services(request).settings
        found = state.ui_sessions = Sessions(api_token(settings), settings.ui_session_ttl)
    return found


def require_enabled(request: Request) -> None:
    """404 when the dashboard is disabled by ``REDKEEP_UI_ENABLED=false``."""
    if not services(request).settings.ui_enabled:
        raise ApiError(404, "not_found", "the dashboard is disabled (REDKEEP_UI_ENABLED=false)")


async def page_session(request: Request) -> Session:
    """The session of a page request; without one, the login page (or a new session when no
    token is configured). Live-region requests get 401 instead: the script then reloads."""
    require_enabled(request)
    store = sessions(request)
    session = store.read(request.cookies.get(COOKIE))
    if session is not None:
        return session
    if not store.login_required:
        return store.issue()
    if FRAGMENT_HEADER in request.headers:
        raise ApiError(401, "unauthorized", "the dashboard session ended: log in again")
    raise LoginRequired


async def action_session(request: Request) -> Session:
    """The session of an action, checked against its CSRF token (403 when either is bad)."""
    require_enabled(request)
    store = sessions(request)
    session = store.read(request.cookies.get(COOKIE))
    if session is None:
        raise ApiError(401, "unauthorized", "no dashboard session: log in again")
    if not store.csrf_ok(session, request.headers.get(CSRF_HEADER)):
        raise ApiError(403, "csrf_failed", "missing or invalid CSRF token: reload the page")
    return session


def safe_next(target: str | None) -> str:
    """A dashboard path to go to after logging in; anything else becomes the overview."""
    if (
        target
        and target.startswith("/ui/")
        and not target.startswith("/ui/login")
        and "//" not in target
        and "\\" not in target
        and all(32 < ord(c) < 127 for c in target)
    ):
        return target
    return "/ui/"


class UiRoute(APIRoute):
    """Dashboard routes: a missing login redirects, errors answer as HTML on pages and as
    JSON on actions and live regions, always with the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        is_page = "GET" in (self.methods or ())

        async def guarded(request: Request) -> Response:
            try:
                return secured(await handler(request))
            except LoginRequired:
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                return secured(RedirectResponse(f"/ui/login?next={quote(safe_next(target))}", 303))
            except Exception as exc:
                response = map_exception(exc)
                if is_page and FRAGMENT_HEADER not in request.headers:
                    response = _error_page(request, exc, response.status_code, bytes(response.body))
                return secured(response)

        return guarded


def _error_page(request: Request, exc: Exception, status: int, body: bytes) -> Response:
    if isinstance(exc, RequestValidationError):
        message = "that address is not valid: a queue or job name does not follow the rules"
    else:
        try:
            message = str(orjson.loads(body)["error"]["message"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            message = "the request could not be served"
    ctx = {"title": f"Error {status}", "status": status, "message": message}
    return render(request, "error.html", ctx, status=status)
