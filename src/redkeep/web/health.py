"""Liveness and readiness endpoints.

``/health/live`` answers 200 while the process serves HTTP. ``/health/ready`` answers 200 when
the backend is usable and 503 otherwise, with a per-component report (backend, redacted URL,
latency, connection and breaker state, degraded reason). Probe results are cached for
``ttl`` seconds and concurrent probes share one check, so probes never hammer Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from redkeep.errors import scrub
from redkeep.web.errors import json_response

if TYPE_CHECKING:
    from redkeep.services import Services

__all__ = ["ReadinessProbe", "live", "ready"]

log = logging.getLogger("redkeep.web")


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


async def live(request: Request) -> Response:
    """200 while the process serves requests."""
    return json_response({"status": "live"})


async def ready(request: Request) -> Response:
    """200 with the component report when ready, 503 otherwise."""
    probe: ReadinessProbe = request.app.state.probe
    try:
        report = await probe.check()
    except Exception as exc:  # a probe must answer, never 500
        log.error("readiness check failed: %s: %s", type(exc).__name__, scrub(str(exc)))
        report = {
            "ready": False,
            "status": "unavailable",
            "reason": f"readiness check failed ({type(exc).__name__})",
            "components": {},
        }
    return json_response(report, 200 if report.get("ready") else 503)
