"""Probes and metrics: ``/health/live``, ``/health/ready`` and ``/metrics``.

``/health/live`` answers 200 while the process serves HTTP. ``/health/ready`` answers 200 when
the backend is usable and 503 otherwise, with a per-component report (backend, redacted URL,
latency, connection and breaker state, degraded reason, and the worker running inside this
process, with a hint when there is none). Probe results are cached for ``ttl`` seconds and
concurrent probes share one check, so probes never hammer Redis. ``/metrics`` is the
Prometheus exposition (it needs the API token when one is set; the probes never do).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from typing_extensions import TypedDict  # pydantic reads it on Python 3.11

from redkeep.errors import scrub
from redkeep.monitoring.metrics import CONTENT_TYPE
from redkeep.web.errors import json_response
from redkeep.web.routing import api_router

if TYPE_CHECKING:
    from redkeep.services import Services

__all__ = ["NO_WORKER_HINT", "ReadinessProbe", "live", "metrics", "ready", "router"]

log = logging.getLogger("redkeep.web")

NO_WORKER_HINT = (
    "no worker runs in this process: enqueued jobs wait until a worker serves their queue "
    "(`redkeep worker MODULE:ATTRIBUTE`, or `redkeep serve --worker MODULE:ATTRIBUTE`)"
)


class ReadinessProbe:
    """Caches :meth:`Services.health` for ``ttl`` seconds; one check at a time."""

    def __init__(self, services: Services, ttl: float = 1.0) -> None:
        self.services = services
        self.ttl = ttl
        self._lock = asyncio.Lock()
        self._report: dict[str, Any] | None = None
        self._at = 0.0

    async def check(self) -> dict[str, Any]:
        """The latest report, re-checked when older than ``ttl``."""
        if self._report is not None and time.monotonic() - self._at < self.ttl:
            return self._report
        async with self._lock:
            if self._report is not None and time.monotonic() - self._at < self.ttl:
                return self._report
            report = await self.services.health()
            self._report, self._at = report, time.monotonic()
            return report


router = api_router(tags=["probes"], public=True)


class Health(TypedDict):
    """The readiness report (``components`` holds backend, caches, queues and worker)."""

    ready: bool
    status: str
    reason: str | None
    backend: str
    warnings: list[str]
    components: dict[str, Any]


@router.get("/health/live", response_model=dict[str, str], openapi_extra={"security": []})
async def live(request: Request) -> Response:
    """200 while the process serves requests."""
    return json_response({"status": "live"})


@router.get(
    "/health/ready",
    response_model=Health,
    responses={503: {"model": Health, "description": "Not ready."}},
    openapi_extra={"security": []},
)
async def ready(request: Request) -> Response:
    """200 with the component report when ready, 503 otherwise."""
    probe: ReadinessProbe = request.app.state.probe
    try:
        report = dict(await probe.check())
    except Exception as exc:  # a probe must answer, never 500
        log.error("readiness check failed: %s: %s", type(exc).__name__, scrub(str(exc)))
        report = {
            "ready": False,
            "status": "unavailable",
            "reason": f"readiness check failed ({type(exc).__name__})",
            "backend": probe.services.backend,
            "warnings": [],
            "components": {},
        }
    worker: dict[str, Any] | None = getattr(request.app.state, "worker", None)
    report["components"] = {
        **report.get("components", {}),
        "worker": worker if worker is not None else {"running": False, "hint": NO_WORKER_HINT},
    }
    return json_response(report, 200 if report.get("ready") else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition; scrape-time gauges are refreshed first."""
    services: Services = request.app.state.services
    try:
        await services.refresh_metrics()
    except Exception as exc:  # a scrape still shows the event metrics during an outage
        log.debug("metrics refresh failed: %s", type(exc).__name__)
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
