"""Rendering for the dashboard: Jinja2 templates (autoescaped), security headers, static files.

Every response under ``/ui`` gets :data:`SECURITY_HEADERS`: a Content-Security-Policy that
allows scripts, styles and requests from this origin only (no inline scripts or styles, no
third-party hosts), no framing, no MIME sniffing, no referrer to other sites and no caching of
pages. Templates escape every value (job payloads, errors, names), so a ``<script>`` in a
payload shows as text.

A page's live regions are its template blocks named in ``live``: the dashboard's script asks
for one with the ``X-Redkeep-Fragment`` header and gets that block alone, rendered from the
same data as the page.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from redkeep import __version__
from redkeep.web.ui.charts import throughput_chart
from redkeep.web.ui.session import COOKIE, Session
from redkeep.web.ui.timeline import progress_of

__all__ = [
    "FRAGMENT_HEADER",
    "SECURITY_HEADERS",
    "STATIC",
    "render",
    "secured",
    "set_session_cookie",
    "static_response",
]

FRAGMENT_HEADER = "x-redkeep-fragment"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _when(ts: float | None) -> str:
    """``2026-11-01 12:00:03`` (UTC) or an en dash."""
    if ts is None:
        return "\u2013"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _ago(ts: float | None, now: float | None = None) -> str:
    """``4s ago``, ``3m ago``, ``in 2h``."""
    if ts is None:
        return "\u2013"
    delta = (time.time() if now is None else now) - ts
    size = abs(delta)
    if size < 120:
        text = f"{size:.0f}s"
    elif size < 7200:
        text = f"{size / 60:.0f}m"
    elif size < 172800:
        text = f"{size / 3600:.0f}h"
    else:
        text = f"{size / 86400:.0f}d"
    return f"{text} ago" if delta >= 0 else f"in {text}"


def _pretty(value: Any) -> str:
    """A JSON value indented for reading (values the serializer tagged stay tagged)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()
    except TypeError:
        return repr(value)


def _compact(value: Any) -> str:
    """A JSON value on one line (escaped by the template like any text)."""
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        return repr(value)


def _query(**params: Any) -> str:
    """``?a=1&b=x`` from the parameters that have a value (none: an empty string)."""
    items = {k: v for k, v in params.items() if v is not None and v != ""}
    return "?" + urlencode(items) if items else ""


def _percent(value: float | None) -> str:
    return "\u2013" if value is None else f"{value * 100:.1f}%"


_env = Environment(
    loader=PackageLoader("redkeep.web.ui", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(
    when=_when, iso=_iso, ago=_ago, pretty=_pretty, compact=_compact, percent=_percent
)


def _load_static() -> dict[str, tuple[bytes, str, str]]:
    types = {"css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8"}
    files: dict[str, tuple[bytes, str, str]] = {}
    for entry in resources.files("redkeep.web.ui").joinpath("static").iterdir():
        kind = entry.name.rpartition(".")[2]
        if kind in types:
            data = entry.read_bytes()
            files[entry.name] = (data, types[kind], hashlib.sha256(data).hexdigest()[:16])
    return files


STATIC = _load_static()
"""The dashboard's static files (name -> bytes, content type, version), read once."""
_env.globals.update(
    version=__version__,
    query=_query,
    throughput_chart=throughput_chart,
    progress_of=progress_of,
    asset=lambda name: f"/ui/static/{name}?v={STATIC[name][2]}",
)
# The macros as a global (``ui.when(...)``): a live block rendered alone still has them.
_env.globals["ui"] = _env.get_template("_macros.html").module


def secured(response: Response) -> Response:
    """``response`` with the dashboard's security headers."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def set_session_cookie(request: Request, response: Response, session: Session) -> None:
    """Set the session cookie (HttpOnly, SameSite=Strict, Path=/ui, Secure over HTTPS)."""
    response.set_cookie(
        COOKIE,
        session.cookie,
        max_age=max(0, int(session.expires - time.time())),
        path="/ui",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    session: Session | None = None,
    status: int = 200,
) -> Response:
    """The page ``template`` with ``context``, or only the live block the request names."""
    tmpl = _env.get_template(template)
    ctx = {"request": request, "session": session, **context}
    block = request.headers.get(FRAGMENT_HEADER)
    if block is not None and block in ctx.get("live", ()):
        html = "".join(tmpl.blocks[block](tmpl.new_context(ctx)))
    else:
        html = tmpl.render(ctx)
    response = HTMLResponse(html, status_code=status)
    if session is not None and session.new:
        set_session_cookie(request, response, session)
    return secured(response)


def static_response(name: str) -> Response | None:
    """A static file of the dashboard (cacheable for a day: URLs carry its version)."""
    found = STATIC.get(name)
    if found is None:
        return None
    data, media, digest = found
    response = Response(data, media_type=media)
    secured(response)
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.headers["ETag"] = f'"{digest}"'
    return response
