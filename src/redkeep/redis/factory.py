"""Build the configured Redis client from :class:`~redkeep.config.Settings`.

``REDKEEP_REDIS_TRANSPORT`` chooses the RESP transport: ``mux`` (the multiplexed fast path,
standalone Redis only), ``redis-py`` (the reference, on redis-py's public API: standalone,
Cluster and Sentinel) or ``auto`` (the default): ``mux`` for a standalone server, ``redis-py``
for a Cluster (``REDKEEP_REDIS_CLUSTER``) or Sentinel (``redis+sentinel://``). Both transports
honour every URL option redkeep accepts (see :mod:`redkeep.redis.urls`), so the choice never
silently drops one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from redkeep.errors import ConfigError
from redkeep.redis.base import CommandObserver, RedisClient
from redkeep.redis.urls import RedisTarget, parse_url

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["choose_transport", "create_client", "create_redis_client"]


def choose_transport(
    settings: Settings, url: str | None = None, *, cluster: bool | None = None
) -> tuple[Literal["mux", "redis-py"], RedisTarget]:
    """The RESP transport ``settings`` ask for and the parsed URL (``url`` and ``cluster``
    default to the settings'); :class:`ConfigError` names the setting when they do not fit."""
    if url is None:
        if settings.redis_url is None:
            raise ConfigError("REDKEEP_REDIS_URL is required for the Redis backend")
        url = settings.redis_url.get_secret_value()
    cluster = settings.redis_cluster if cluster is None else cluster
    target = parse_url(url).with_cluster(cluster)
    name = settings.redis_transport
    if name == "auto":
        return ("mux" if target.kind == "standalone" else "redis-py"), target
    if name == "mux" and target.kind != "standalone":
        reason = f"mux serves standalone Redis only, not a {target.kind}; use redis-py or auto"
        raise ConfigError(
            f"invalid redkeep settings:\n  REDKEEP_REDIS_TRANSPORT: {reason}",
            {"REDKEEP_REDIS_TRANSPORT": reason},
        )
    return name, target


def create_client(
    settings: Settings, *, observer: CommandObserver | None = None
) -> RedisClient | None:
    """The client for ``settings.effective_backend``: a RESP transport (see the module notes),
    UpstashRestClient, or None for the memory backend. Nothing connects until the first call.
    """
    backend = settings.effective_backend
    if backend == "redis":
        return create_redis_client(settings, observer=observer)
    if backend == "upstash":
        from redkeep.redis.upstash import UpstashRestClient

        return UpstashRestClient.from_settings(settings, observer=observer)
    return None


def create_redis_client(
    settings: Settings,
    url: str | None = None,
    *,
    cluster: bool | None = None,
    command_timeout: float | None = None,
    observer: CommandObserver | None = None,
) -> RedisClient:
    """A RESP client for ``url`` (default: the settings' URL) on the transport the settings
    choose, with their timeouts, pool size, retries and busy-poll budget."""
    transport, target = choose_transport(settings, url, cluster=cluster)
    common = {
        "connect_timeout": settings.connect_timeout,
        "command_timeout": command_timeout or settings.command_timeout,
        "max_connections": settings.max_connections,
        "retry_attempts": settings.retry_attempts,
        "retry_base_delay": settings.retry_base_delay,
        "retry_max_delay": settings.retry_max_delay,
        "observer": observer,
    }
    if transport == "mux":
        from redkeep.redis.mux import MuxClient

        return MuxClient(target, spin=settings.busy_poll, **common)  # type: ignore[arg-type]
    from redkeep.redis.redispy import RedisPyClient

    return RedisPyClient(target, **common)  # type: ignore[arg-type]
