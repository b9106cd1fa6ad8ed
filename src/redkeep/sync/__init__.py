"""Blocking API for synchronous applications (Django, Flask, scripts, gunicorn workers).

    from redkeep.sync import create_sync_services

    with create_sync_services() as services:
        cache = services.cache("sessions")
        cache.set("user:1", {"name": "Ada"}, ttl=3600)
        job = services.queue("emails").enqueue("send_welcome", {"user": 1})

The same caches and queues as the async API (same behaviour, errors and metrics), thread-safe
and fork-safe. See docs/sync.md.
"""

from redkeep.sync.cache import SyncCache
from redkeep.sync.queue import SyncQueue
from redkeep.sync.runner import AsyncContextError, LoopRunner
from redkeep.sync.services import SyncServices, create_sync_services

__all__ = [
    "AsyncContextError",
    "LoopRunner",
    "SyncCache",
    "SyncQueue",
    "SyncServices",
    "create_sync_services",
]
