"""The Starlette application: health, metrics, the ``/v1`` API and its OpenAPI schema."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from redkeep import __version__
from redkeep.config import Settings
from redkeep.monitoring.metrics import CONTENT_TYPE
from redkeep.services import Services, create_services
from redkeep.web import api
from redkeep.web.errors import exception_handlers, json_response
from redkeep.web.health import ReadinessProbe, live, ready
from redkeep.web.middleware import BearerAuthMiddleware, MetricsMiddleware
from redkeep.web.openapi import openapi_schema

__all__ = ["api_token", "create_app", "create_probe_app"]

log = logging.getLogger("redkeep.web")


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text exposition; scrape-time gauges are refreshed first."""
    services: Services = request.app.state.services
    try:
        await services.refresh_metrics()
    except Exception as exc:  # a scrape still shows the event metrics during an outage
        log.debug("metrics refresh failed: %s", type(exc).__name__)
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)


async def openapi_endpoint(request: Request) -> Response:
    """The OpenAPI 3 document."""
    return json_response(request.app.state.openapi)


def api_token(settings: Settings) -> str | None:
    """The configured API token; None when unset or blank (then the API is open)."""
    token = settings.api_token.get_secret_value().strip() if settings.api_token else ""
    return token or None


def _extra_routes() -> list[BaseRoute]:
    """Routes contributed by optional modules (the migration export endpoint)."""
    try:
        from redkeep.web import export
    except ImportError:  # pragma: no cover - ships with redkeep; optional by design
        return []
    return list(export.routes)


def create_app(
    services: Services | None = None,
    *,
    settings: Settings | None = None,
    worker_handlers: Mapping[str, Callable[..., Any]] | None = None,
    worker_queues: list[str] | None = None,
    manage_services: bool | None = None,
) -> Starlette:
    """Build the ASGI app.

    Without ``services`` the app creates them from ``settings`` and starts / closes them in its
    lifespan (``manage_services`` defaults to that). With ``worker_handlers`` a worker runs
    those handlers inside the service for ``worker_queues`` (default: ``["default"]``).
    """
    if services is None:
        services = create_services(settings)
        manage = True if manage_services is None else manage_services
    else:
        manage = bool(manage_services)
    svc = services

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage:
            await svc.start()
        worker_task: asyncio.Task[None] | None = None
        worker = None
        try:
            if worker_handlers is not None:
                worker = svc.worker(worker_handlers, queues=worker_queues, handle_signals=False)
                worker_task = asyncio.create_task(worker.run(), name="redkeep-worker")
            yield
        finally:
            if worker is not None and worker_task is not None:
                worker.stop()
                try:
                    await worker_task
                except Exception as exc:
                    log.error("worker stopped with an error: %s", type(exc).__name__)
            if manage:
                await svc.close()

    routes: list[BaseRoute] = [
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        *api.routes,
        *_extra_routes(),
    ]
    app = Starlette(routes=routes, exception_handlers=exception_handlers, lifespan=lifespan)
    app.state.services = svc
    app.state.probe = ReadinessProbe(svc)
    app.state.openapi = openapi_schema(
        max_key_length=svc.settings.cache_max_key_length, version=__version__
    )
    app.add_middleware(BearerAuthMiddleware, token=api_token(svc.settings))
    app.add_middleware(MetricsMiddleware, metrics=svc.metrics, routes=routes)
    return app


def create_probe_app(services: Services) -> Starlette:
    """Health probes and ``/metrics`` only, for a ``redkeep worker`` process.

    ``services`` are started and closed by the caller. ``/metrics`` needs the API token when
    one is set, as in :func:`create_app`; the probes are public.
    """
    routes: list[BaseRoute] = [
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers=exception_handlers)
    app.state.services = services
    app.state.probe = ReadinessProbe(services)
    app.add_middleware(BearerAuthMiddleware, token=api_token(services.settings))
    return app
