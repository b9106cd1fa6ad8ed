"""Build the configured Redis client from :class:`~redkeep.config.Settings`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from redkeep.redis.base import CommandObserver, RedisClient

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["create_client"]


def create_client(
    settings: Settings, *, observer: CommandObserver | None = None
) -> RedisClient | None:
    """The client for ``settings.effective_backend``: RespClient (standalone or Cluster),
    UpstashRestClient, or None for the memory backend. Nothing connects until the first call.
    """
    backend = settings.effective_backend
    if backend == "redis":
        from redkeep.redis.resp import RespClient

        return RespClient.from_settings(settings, observer=observer)
    if backend == "upstash":
        from redkeep.redis.upstash import UpstashRestClient

        return UpstashRestClient.from_settings(settings, observer=observer)
    return None
