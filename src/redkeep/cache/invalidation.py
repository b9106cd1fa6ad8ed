"""Cross-process L1 invalidation: :class:`InvalidationListener`.

Redis server-assisted client-side caching in broadcasting mode. One dedicated connection per
Redis primary (built with redis-py's public ``ConnectionPool.from_url`` from the same URL, TLS,
ACL user and timeouts as the main client; RESP2, whatever redis-py's default protocol) runs::

    CLIENT ID                                            -> id
    CLIENT TRACKING ON REDIRECT <id> BCAST PREFIX <key_prefix>:cache:
    SUBSCRIBE __redis__:invalidate

From then on the server publishes, to that connection, the name of every key under the prefix
that any client modifies, and every key it expires or evicts; a FLUSHDB/FLUSHALL arrives as a
null message. Each key is handed to the callback of the cache whose namespace it is in.

Freshness. Every ``max_lag / 4`` seconds the listener sends a PING on the same connection. A
connection delivers in order, so when the reply of a PING sent at time *t* is read, every
invalidation the server produced before it processed that PING has been handled. :meth:`fresh`
is true only while that *t* is at most ``max_lag`` seconds old on every node: a cache that
checks it before answering from L1 never returns a value that was overwritten in Redis more than
``max_lag`` seconds earlier, whatever the network does. When a connection is lost (or has not
answered a PING for ``connect_timeout + command_timeout``, then it is closed), every subscriber
is told to drop everything (callback ``None``) and the listener reconnects with capped, jittered
backoff; it is fresh again once tracking is re-established and a PING came back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from redis import exceptions as rx
from redis.asyncio import ConnectionPool

from redkeep.cache.invalidation_node import CHANNEL, TrackingNode, cancelling
from redkeep.errors import scrub

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["CHANNEL", "InvalidationListener", "ListenerState", "Subscriber", "parse_primaries"]

log = logging.getLogger("redkeep.cache")

Subscriber = Callable[[str | None], None]
"""Called with a user key that changed in Redis, or None for "drop everything"."""

ListenerState = Literal["stopped", "connecting", "up", "down"]


class InvalidationListener:
    """Receives Redis key invalidations for every cache under ``{key_prefix}:cache:``.

    ``url`` is the Redis URL (``redis://``, ``rediss://`` with redis-py's TLS query options,
    ``unix://``; may carry an ACL user and password). Caches register with :meth:`subscribe`;
    the listener starts on first :meth:`ensure_started` (from a running event loop) and stops
    in :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "redkeep",
        cluster: bool = False,
        max_lag: float = 1.0,
        connect_timeout: float = 5.0,
        command_timeout: float = 2.0,
        retry_base_delay: float = 0.05,
        retry_max_delay: float = 2.0,
    ) -> None:
        if not max_lag > 0:
            raise ValueError(f"max_lag must be positive, got {max_lag!r}")
        self.prefix = f"{key_prefix}:cache:"
        self.max_lag = max_lag
        """A read may use L1 only while the newest acknowledged PING is at most this old."""
        self.heartbeat = max_lag / 4
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.dead_after = max(connect_timeout + command_timeout, 2 * max_lag)
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.invalidations = 0
        """Invalidation messages received (a message may name several keys)."""
        self.losses = 0
        """Times a tracking connection was lost (or failed to set up)."""
        self.last_error: str | None = None
        """Why the channel last failed (scrubbed of credentials), or None."""
        self._options: dict[str, Any] = {
            "decode_responses": True,
            "encoding_errors": "replace",
            "protocol": 2,  # invalidations as pub/sub messages, as in redis-py 5 and 8
            "socket_connect_timeout": connect_timeout,
            "socket_timeout": None,  # the reader blocks; liveness comes from the PINGs
            "client_name": "redkeep-invalidation",
        }
        self._url = url
        self.cluster = cluster
        """One tracking connection per primary, found with CLUSTER NODES (see :meth:`_watch`)."""
        self._nodes: list[TrackingNode] = (
            [] if cluster else [TrackingNode(self, self._pool(), "redis")]
        )
        self._topology_at = 0.0
        self.fresh_until = 0.0
        """Monotonic time until which :meth:`fresh` holds (0 while any node is down)."""
        self._progress = asyncio.Event()
        self._control: Any = None
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> InvalidationListener:
        """A listener on ``settings.redis_url`` with its prefix, timeouts and L1 lag bound."""
        if settings.redis_url is None:
            raise ValueError("cache invalidation needs REDKEEP_REDIS_URL")
        return cls(
            settings.redis_url.get_secret_value(),
            key_prefix=settings.key_prefix,
            max_lag=settings.cache_l1_max_lag,
            connect_timeout=settings.connect_timeout,
            command_timeout=settings.command_timeout,
            retry_base_delay=settings.retry_base_delay,
            retry_max_delay=settings.retry_max_delay,
            cluster=settings.redis_cluster,
        )

    def _pool(self, host: str | None = None, port: int | None = None) -> ConnectionPool:
        pool = ConnectionPool.from_url(self._url, **self._options)
        if host is not None:
            pool.connection_kwargs.update(host=host, port=port)
        return pool

    # -- state ---------------------------------------------------------------------------------
    @property
    def state(self) -> ListenerState:
        """``up`` while every node's tracking connection is established."""
        if self._closed or not self._tasks:
            return "stopped"
        if self._nodes and all(n.up for n in self._nodes):
            return "up"
        return "down" if self.losses else "connecting"

    @property
    def nodes(self) -> list[str]:
        """The primaries tracked (``host:port`` on a Cluster, ``redis`` otherwise)."""
        return [n.where for n in self._nodes]

    def fresh(self) -> bool:
        """True when every invalidation older than ``max_lag`` seconds has been applied."""
        return time.monotonic() < self.fresh_until

    def recompute(self) -> None:
        """Update :attr:`fresh_until` after a node's state or acknowledged heartbeat changed."""
        nodes = self._nodes
        if not nodes or self._closed or not all(n.up for n in nodes):
            self.fresh_until = 0.0
            return
        oldest = min(n.acked_at for n in nodes)
        if self.cluster:
            oldest = min(oldest, self._topology_at)
        self.fresh_until = oldest + self.max_lag

    def lag(self) -> float | None:
        """Seconds since the oldest node's newest acknowledged PING was sent (None if down)."""
        if not self._nodes or not all(n.up for n in self._nodes):
            return None
        now = time.monotonic()
        return max(now - n.acked_at for n in self._nodes)

    async def sync(self) -> None:
        """Wait until every invalidation Redis produced before this call has been applied.

        Sends a PING on every tracking connection and waits for the replies (waiting first for
        the channel to be up). Bound it with ``asyncio.timeout``. Useful before a read that must
        see what another process just wrote, and in tests.
        """
        self.ensure_started()
        while not self.fresh():
            await self._wait_progress()
        sent = {id(n): n.ping_now() for n in self._nodes}
        while not all(n.up and n.acked_at >= sent.get(id(n), math.inf) for n in self._nodes):
            if not all(n.up for n in self._nodes):
                return await self.sync()  # lost meanwhile: start over once it is back
            await self._wait_progress()
        return None

    async def _wait_progress(self) -> None:
        self._progress.clear()
        await self._progress.wait()

    def progressed(self) -> None:
        """A node's state or acknowledged heartbeat changed (wakes :meth:`sync`)."""
        self._progress.set()

    # -- subscribers ---------------------------------------------------------------------------
    def subscribe(self, cache_name: str, callback: Subscriber) -> None:
        """Route invalidations of cache ``cache_name``'s keys to ``callback``."""
        self._subscribers.setdefault(cache_name, []).append(callback)

    def unsubscribe(self, cache_name: str, callback: Subscriber) -> None:
        """Stop routing invalidations of ``cache_name`` to ``callback``."""
        callbacks = self._subscribers.get(cache_name, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks:
            self._subscribers.pop(cache_name, None)

    def received(self, keys: Any) -> None:
        """Apply one invalidation message: a list of Redis keys, or None (flush)."""
        self.invalidations += 1
        if keys is None:
            self.drop_all()
            return
        prefix = self.prefix
        cut = len(prefix)
        subscribers = self._subscribers
        for full in keys:
            if not isinstance(full, str) or not full.startswith(prefix):
                continue
            name, sep, key = full[cut:].partition(":")
            for callback in subscribers.get(name, ()):
                if sep:
                    callback(key)

    def drop_all(self) -> None:
        """Tell every subscriber to drop everything it holds."""
        for callbacks in list(self._subscribers.values()):
            for callback in list(callbacks):
                callback(None)

    def connected(self, node: TrackingNode) -> None:
        """A node's tracking connection is (re-)established."""
        self.recompute()
        self.progressed()
        if self.losses:
            log.warning("cache invalidation: tracking re-established on %s", node.where)

    def lost(self, where: str, exc: BaseException, *, news: bool) -> None:
        """A node's tracking connection failed: every L1 drops everything and is bypassed."""
        self.losses += 1
        self.drop_all()
        if isinstance(exc, rx.ResponseError):
            self.last_error = f"Redis refused client tracking ({scrub(str(exc))})"
        else:
            self.last_error = f"{type(exc).__name__}: {scrub(str(exc))}"
        log.log(
            logging.WARNING if news else logging.DEBUG,
            "cache invalidation: %s lost (%s); L1 caches are bypassed until it is back",
            where,
            self.last_error,
        )

    # -- lifecycle -----------------------------------------------------------------------------
    def ensure_started(self) -> None:
        """Start listening on the running loop (no-op once started or after close)."""
        if self._tasks or self._closed:
            return
        loop = asyncio.get_running_loop()
        if self.cluster:
            self._tasks = [loop.create_task(self._watch(), name="redkeep-invalidation-topology")]
        else:
            self._tasks = [self._start(self._nodes[0])]

    def _start(self, node: TrackingNode) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(
            node.run(), name=f"redkeep-invalidation-{node.where}"
        )

    # -- cluster topology ----------------------------------------------------------------------
    async def _watch(self) -> None:
        """Cluster: keep one tracking node per primary, re-reading CLUSTER NODES every
        heartbeat. A primary that appears is tracked (L1 stays bypassed until it is up); one
        that disappears is dropped, and every L1 with it. :meth:`fresh` also requires the last
        successful check to be at most ``max_lag`` old."""
        tasks: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                try:
                    primaries = await self._primaries()
                except Exception as exc:
                    await self._close_control()
                    if self._closed or cancelling():
                        raise asyncio.CancelledError from None
                    self.lost("the cluster topology", exc, news=not self.losses)
                else:
                    self._topology_at = time.monotonic()
                    self._apply_topology(primaries, tasks)
                    self.recompute()
                await asyncio.sleep(self.heartbeat)
        finally:
            for task in tasks.values():
                task.cancel()
            for task in tasks.values():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self._close_control()

    def _apply_topology(
        self, primaries: dict[str, tuple[str, int]], tasks: dict[str, asyncio.Task[None]]
    ) -> None:
        known = {n.where: n for n in self._nodes}
        if set(known) == set(primaries):
            return
        nodes = [known[w] for w in primaries if w in known]
        for where, (host, port) in primaries.items():
            if where not in known:
                node = TrackingNode(self, self._pool(host, port), where)
                nodes.append(node)
                tasks[where] = self._start(node)
        self._nodes = nodes
        self.recompute()
        for where in set(known) - set(primaries):
            tasks.pop(where).cancel()
            self.drop_all()  # its keys now live elsewhere; what it reported may be incomplete
        log.info("cache invalidation: tracking %d cluster primaries", len(nodes))

    async def _primaries(self) -> dict[str, tuple[str, int]]:
        """``{"host:port": (host, port)}`` of the cluster's primaries (CLUSTER NODES)."""
        control = self._control
        if control is None:
            control = self._control = await self._connect_control()
        async with asyncio.timeout(self.command_timeout):
            await control.send_command("CLUSTER", "NODES")
            text = await control.read_response()
        return parse_primaries(str(text))

    async def _connect_control(self) -> Any:
        """A connection to the first node that answers: a known primary, else the URL's."""
        pools: list[Any] = [n.pool for n in self._nodes] + [self._pool()]
        for pool in pools:
            conn = pool.make_connection()
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await conn.connect()
            except Exception:
                await conn.disconnect()
                if pool is pools[-1]:
                    raise
                continue
            return conn
        raise AssertionError("unreachable")  # pragma: no cover

    async def _close_control(self) -> None:
        conn, self._control = self._control, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    async def close(self) -> None:
        """Stop listening and close the tracking connections."""
        self._closed = True
        self.fresh_until = 0.0
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for node in self._nodes:
            await node._disconnect()
            await node.pool.disconnect()
        self.drop_all()


def parse_primaries(nodes: str) -> dict[str, tuple[str, int]]:
    """The reachable primaries in a CLUSTER NODES reply: ``{"host:port": (host, port)}``."""
    found: dict[str, tuple[str, int]] = {}
    for line in nodes.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        flags = fields[2].split(",")
        if "master" not in flags or "fail" in flags or "noaddr" in flags or "handshake" in flags:
            continue
        address = fields[1].split("@", 1)[0]
        host, _, port = address.rpartition(":")
        if host and port.isdigit() and int(port) > 0:
            found[f"{host}:{port}"] = (host.strip("[]"), int(port))
    return found
