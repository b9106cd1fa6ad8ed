"""Startup wiring: one :class:`Services` object builds and owns the backend connection, the
cache manager, the job queues and the metrics of an application.

    async with create_services() as services:
        sessions = services.cache("sessions")
        await services.queue().enqueue("send_email", {"to": "a@example.com"})

Startup validates the backend (PING, script load, ``maxmemory-policy``). With
``REDKEEP_STARTUP=strict`` startup waits up to ``REDKEEP_CONNECT_MAX_WAIT`` seconds for an
unreachable backend (retrying with backoff), then raises :class:`StartupError`; a backend that
answers but is unusable (wrong password, scripts refused, evicting policy) raises at once. With
``degraded`` (the default) the service starts at once anyway, caches answer from their memory
fallback and ``/health/ready`` reports why.

Modules: :mod:`~redkeep.services.core` (:class:`Services`: lifecycle and components),
:mod:`~redkeep.services.checks` (startup checks), :mod:`~redkeep.services.health` (readiness
report and metrics).
"""

from redkeep.errors import StartupError
from redkeep.services.checks import SAFE_EVICTION_POLICIES
from redkeep.services.core import MAX_NAMED, MEMORY_WARNING, Services, create_services

__all__ = [
    "MAX_NAMED",
    "MEMORY_WARNING",
    "SAFE_EVICTION_POLICIES",
    "Services",
    "StartupError",
    "create_services",
]
