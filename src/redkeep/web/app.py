"""The HTTP application (FastAPI on Starlette): probes, metrics, the ``/v1`` API, OpenAPI.

Routes come from the modules in :data:`ROUTERS`; each defines a ``router`` following the
pattern of :mod:`redkeep.web.routing`. Middleware, outermost first: what :data:`APP_HOOKS` add
(tracing), request metrics (refused requests are counted too), the request guard (Host,
cross-site writes, content type, body size and time: :mod:`redkeep.web.security`), then
bearer-token authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.routing import BaseRoute

from redkeep import __version__
from redkeep.config import Settings
from redkeep.services import Services, create_services
from redkeep.web.errors import exception_handlers
from redkeep.web.health import ReadinessProbe
from redkeep.web.middleware import BearerAuthMiddleware, MetricsMiddleware
from redkeep.web.openapi import openapi_document
from redkeep.web.security import HostPolicy, RequestGuard

__all__ = [
    "APP_HOOKS",
    "BODY_OVERHEAD",
    "ROUTERS",
    "AppHook",
    "api_token",
    "create_app",
    "create_probe_app",
]

log = logging.getLogger("redkeep.web")

#: One module per group of routes, each with a ``router`` (see :mod:`redkeep.web.routing`).
#: To add routes, write the module and append it here.
ROUTERS: tuple[str, ...] = (
    "redkeep.web.health",
    "redkeep.web.caches",
    "redkeep.web.queues",
    "redkeep.web.bulk",
    "redkeep.web.limits",
    "redkeep.web.schedules",
    "redkeep.web.events",
    "redkeep.web.export",
    "redkeep.web.workers",
    "redkeep.web.ui",
)
AppHook = Callable[[FastAPI, Sequence[BaseRoute]], None]
APP_HOOKS: list[AppHook] = []
"""Called with every app :func:`create_app` and :func:`create_probe_app` build and the flat
list of its routes, after its own middleware, so middleware a hook adds is the outermost
(:mod:`redkeep.contrib.otel` adds its tracing this way). Empty unless an integration is on."""
BODY_OVERHEAD = 64 * 1024
"""Bytes a request body may have beyond ``max_payload_bytes`` (the JSON around the value)."""


def api_token(settings: Settings) -> str | None:
    """The configured API token; None when unset or blank (then the API is open)."""
    token = settings.api_token.get_secret_value().strip() if settings.api_token else ""
    return token or None


def _router(module: str) -> APIRouter:
    router: APIRouter = importlib.import_module(module).router
    return router


def _build(
    services: Services,
    routers: tuple[str, ...],
    bind_host: str | None,
    lifespan: Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="redkeep",
        version=__version__,
        description="Durable cache and job-queue service on Redis.",
        docs_url=None,  # Swagger UI would load scripts from a CDN
        redoc_url=None,
        exception_handlers=exception_handlers,
        lifespan=lifespan,
    )
    # Flat list of every route for the metrics' route labels (included routers hide theirs).
    routes: list[BaseRoute] = [r for r in app.router.routes if hasattr(r, "path")]
    for module in routers:
        router = _router(module)
        app.include_router(router)
        routes.extend(router.routes)
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    app.state.services = services
    app.state.probe = ReadinessProbe(services)
    app.state.worker = None
    s = services.settings
    token = api_token(s)
    # The last added is the outermost. The dashboard (/ui) checks its own session cookie: a
    # browser cannot send the bearer token.
    app.add_middleware(BearerAuthMiddleware, token=token, public_prefixes=("/health/", "/ui"))
    app.add_middleware(
        RequestGuard,
        policy=HostPolicy(s.http_allowed_hosts, bind_host=bind_host, token=token is not None),
        max_body=s.max_payload_bytes + BODY_OVERHEAD,
        body_timeout=s.http_body_timeout,
    )
    app.add_middleware(MetricsMiddleware, metrics=services.metrics, routes=routes)
    for hook in APP_HOOKS:
        hook(app, routes)
    return app


def create_app(
    services: Services | None = None,
    *,
    settings: Settings | None = None,
    worker_handlers: Mapping[str, Callable[..., Any]] | None = None,
    worker_queues: list[str] | None = None,
    manage_services: bool | None = None,
    bind_host: str | None = None,
) -> FastAPI:
    """Build the ASGI app.

    Without ``services`` the app creates them from ``settings`` and starts / closes them in its
    lifespan (``manage_services`` defaults to that). With ``worker_handlers`` a worker runs
    those handlers inside the service for ``worker_queues`` (default: ``["default"]``).
    ``bind_host`` is the address the server listens on: a host name there is an allowed
    ``Host`` header (see :mod:`redkeep.web.security`).
    """
    if services is None:
        services = create_services(settings)
        manage = True if manage_services is None else manage_services
    else:
        manage = bool(manage_services)
    svc = services
    queues = list(worker_queues or ["default"])

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage:
            await svc.start()
        worker_task: asyncio.Task[None] | None = None
        worker = None
        try:
            if worker_handlers is not None:
                worker = svc.worker(worker_handlers, queues=queues, handle_signals=False)
                worker_task = asyncio.create_task(worker.run(), name="redkeep-worker")
                app.state.worker = {
                    "running": True,
                    "queues": queues,
                    "handlers": sorted(worker_handlers),
                }
            yield
        finally:
            app.state.worker = None
            if worker is not None and worker_task is not None:
                worker.stop()
                try:
                    await worker_task
                except Exception as exc:
                    log.error("worker stopped with an error: %s", type(exc).__name__)
            if manage:
                await svc.close()

    return _build(svc, ROUTERS, bind_host, lifespan)


def create_probe_app(services: Services, *, bind_host: str | None = None) -> FastAPI:
    """``/health/*`` and ``/metrics`` only, for a ``redkeep worker`` process.

    ``services`` are started and closed by the caller. ``/metrics`` needs the API token when
    one is set, as in :func:`create_app`; the probes are public.
    """
    app = _build(services, ("redkeep.web.health",), bind_host)
    app.state.worker = {"running": True}
    return app
