"""SERVER spans of the HTTP API, from the OpenTelemetry ASGI instrumentation."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from redkeep.contrib.otel._tracing import Tracing
from redkeep.web.middleware import UNMATCHED, route_label

__all__ = ["HttpTracing", "app_hook"]

log = logging.getLogger("redkeep.contrib.otel")


class HttpTracing:
    """ASGI middleware: the ASGI instrumentation's SERVER spans, named by route template, for
    requests outside ``excluded`` while tracing is configured; straight to the app otherwise.

    The instrumentation's middleware is this one's ``app``, where FastAPI's own telemetry
    (FastAPI 0.16x and later) looks for it and then makes no second span of the request.
    """

    def __init__(
        self,
        app: ASGIApp,
        traced: Callable[..., ASGIApp],
        tracing: Tracing,
        routes: Sequence[BaseRoute],
        excluded: Collection[str],
    ) -> None:
        self.inner = app
        self.tracing = tracing
        self.routes = routes
        self.excluded = excluded
        self.app = traced(app, default_span_details=self._details)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("path") in self.excluded
            or self.tracing.tracer() is None
        ):
            await self.inner(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _details(self, scope: Scope) -> tuple[str, dict[str, str]]:
        method = str(scope.get("method", "HTTP"))
        route = route_label(self.routes, scope)
        if route == UNMATCHED:
            return method, {}
        return f"{method} {route}", {"http.route": route}


def app_hook(tracing: Tracing, excluded: Collection[str]) -> Callable[[Any, Sequence[Any]], None]:
    """A :data:`redkeep.web.app.APP_HOOKS` entry adding :class:`HttpTracing` to an app."""

    def hook(app: Any, routes: Sequence[BaseRoute]) -> None:
        if getattr(app, "_is_instrumented_by_opentelemetry", False):
            return  # the FastAPI instrumentation traces this app already
        try:
            from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        except ImportError:
            log.warning("HTTP requests are not traced: opentelemetry-instrumentation-asgi is "
                        "missing (pip install 'redkeep[otel]')")  # fmt: skip
            return
        traced = functools.partial(
            OpenTelemetryMiddleware,
            tracer_provider=tracing.provider,
            exclude_spans=["receive", "send"],
        )
        app.add_middleware(
            HttpTracing, traced=traced, tracing=tracing, routes=routes, excluded=excluded
        )

    return hook
