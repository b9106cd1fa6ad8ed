"""Pure ASGI middleware: request metrics and bearer-token authentication.

Both are plain ASGI callables rather than Starlette's ``BaseHTTPMiddleware``, which buffers
responses through an extra task and memory stream on every request.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Sequence

import orjson
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from redkeep.monitoring.metrics import Metrics

__all__ = ["UNMATCHED", "BearerAuthMiddleware", "MetricsMiddleware", "route_label"]

UNMATCHED = "<unmatched>"
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")


class MetricsMiddleware:
    """Counts requests and their latency by route *template* (``/v1/caches/{name}``), method
    and status. Paths that match no route share one label so scanners cannot blow up
    cardinality."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = route_label(self.routes, scope)
            self.metrics.observe_http(
                scope.get("method", "GET"), route, status, time.perf_counter() - start
            )


def route_label(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The template of the route ``scope`` matches (``/v1/caches/{name}``), the route a wrong
    method only partly matches (405), or :data:`UNMATCHED`."""
    partial = UNMATCHED
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return _label(route)
        if match == Match.PARTIAL and partial == UNMATCHED:
            partial = _label(route)  # e.g. wrong method: 405
    return partial


def _label(route: BaseRoute) -> str:
    """``/v1/caches/{name}/keys/{key:cachekey}`` -> ``/v1/caches/{name}/keys/{key}``."""
    return _CONVERTOR.sub(r"{\1}", str(getattr(route, "path", UNMATCHED)))


class BearerAuthMiddleware:
    """Requires ``Authorization: Bearer <token>`` on every path except the public prefixes.

    Compares in constant time; the 401 body never echoes what was sent.
    """

    def __init__(
        self, app: ASGIApp, token: str | None, public_prefixes: Sequence[str] = ("/health/",)
    ) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.public = tuple(public_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.token is None
            or scope["type"] != "http"
            or str(scope.get("path", "")).startswith(self.public)
        ):
            await self.app(scope, receive, send)
            return
        supplied = b""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, credential = bytes(value).partition(b" ")
                if scheme.lower() == b"bearer":
                    supplied = credential.strip()
                break
        if supplied and hmac.compare_digest(supplied, self.token):
            await self.app(scope, receive, send)
            return
        message = "missing bearer token" if not supplied else "invalid bearer token"
        body = orjson.dumps({"error": {"type": "unauthorized", "message": message}})
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="redkeep"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
