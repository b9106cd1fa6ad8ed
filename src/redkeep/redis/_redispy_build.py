"""Building redis-py clients for the reference transport, and reading redis-py's errors.

:func:`build` makes the ``Redis`` / ``RedisCluster`` / ``Sentinel.master_for`` client of a
:class:`~redkeep.redis.urls.RedisTarget`, with redis-py's own retries off (they re-send commands
that may already have run) and its response callbacks removed (raw replies, as on the fast
path). :func:`never_sent` tells from an error whether redis-py failed before writing the
command.
"""

from __future__ import annotations

from typing import Any

import redis
from redis import exceptions as rx
from redis.asyncio import Redis, RedisCluster, Sentinel
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError
from redis.backoff import NoBackoff

from redkeep.redis.urls import RedisTarget

__all__ = ["build", "never_sent", "sentinel_for"]

_KEEP_CLUSTER_CALLBACKS = ("CLUSTER", "COMMAND", "INFO")  # its own bootstrap
_REDIS_PY_MAJOR = int(redis.__version__.split(".")[0])


def never_sent(exc: BaseException) -> bool:
    """True when redis-py failed before writing the command (safe to send it again): it could
    not connect, a sentinel named no primary, a demoted primary answered READONLY, or the
    cluster refused before running it. Anything else may have been written."""
    if isinstance(exc, rx.TimeoutError):
        return False
    if isinstance(exc, MasterNotFoundError | rx.ClusterDownError | rx.TryAgainError):
        return True
    if isinstance(exc.__context__, rx.ReadOnlyError):
        return True
    text = str(exc)
    return "connecting to" in text or "Too many connections" in text


def _connection_kwargs(
    target: RedisTarget, connect_timeout: float, timeout: float
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "decode_responses": True,
        "encoding_errors": "replace",
        "socket_timeout": timeout,
        "socket_connect_timeout": connect_timeout,
        "socket_keepalive": target.socket_keepalive,
        "health_check_interval": target.health_check_interval,
        "retry": Retry(NoBackoff(), 0),
        "username": target.username,
        "password": target.password,
        "client_name": target.client_name,
        "protocol": target.protocol,
    }
    if target.kind != "cluster":
        kwargs["db"] = target.db
    if target.tls:
        kwargs["ssl"] = True
        kwargs.update(target.ssl)
    return kwargs


def sentinel_for(target: RedisTarget, connect_timeout: float, timeout: float) -> Sentinel:
    """The ``Sentinel`` of a ``redis+sentinel://`` target."""
    return Sentinel(
        list(target.hosts),
        sentinel_kwargs={
            "username": target.sentinel_username,
            "password": target.sentinel_password,
            "socket_timeout": timeout,
            "socket_connect_timeout": connect_timeout,
            "decode_responses": True,
        },
    )


def build(
    target: RedisTarget,
    *,
    connect_timeout: float,
    timeout: float,
    max_connections: int,
    sentinel: Sentinel | None = None,
) -> Any:
    """A redis-py client for ``target`` whose reads wait up to ``timeout`` (a Sentinel target
    needs its ``sentinel``)."""
    t = target
    kwargs = _connection_kwargs(t, connect_timeout, timeout)
    keep: tuple[str, ...] = ()
    if t.kind == "cluster":
        if _REDIS_PY_MAJOR < 6:  # 6+ takes the retry object instead
            kwargs.update(cluster_error_retry_attempts=0, connection_error_retry_attempts=0)
        client: Any = RedisCluster(
            host=t.host,
            port=t.port,
            # the caller's semaphore is the real bound; headroom for connections redis-py
            # recycles after a topology refresh
            max_connections=2 * max_connections,
            reinitialize_steps=0,
            **kwargs,
        )
        keep = _KEEP_CLUSTER_CALLBACKS
    elif t.kind == "sentinel":
        assert sentinel is not None and t.service is not None
        client = sentinel.master_for(t.service, max_connections=max_connections, **kwargs)
    elif t.path is not None:
        client = Redis(unix_socket_path=t.path, max_connections=max_connections, **kwargs)
    else:
        client = Redis(host=t.host, port=t.port, max_connections=max_connections, **kwargs)
    callbacks = client.response_callbacks
    for name in list(callbacks):
        if not (keep and str(name).upper().startswith(keep)):
            del callbacks[name]
    return client
