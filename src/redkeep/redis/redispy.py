"""The reference transport: redis-py's public API (``Redis``, ``RedisCluster``, ``Sentinel``).

- Standalone (``redis://``, ``rediss://``, ``unix://``) and Sentinel (``redis+sentinel://``)
  run on ``redis.asyncio.Redis`` (from ``Sentinel.master_for`` for Sentinel, which finds the
  current primary on every new connection); a Cluster on ``redis.asyncio.RedisCluster``.
- Concurrent commands are coalesced into shared pipelines (:mod:`redkeep.redis._coalesce`);
  blocking pops, transactions and replicated writes get a pool connection of their own.
- redis-py's own retries are off (``Retry(NoBackoff(), 0)``, and no cluster error retries),
  because they re-send commands that may already have run. This transport re-sends a command
  itself, with ``FullJitterBackoff`` up to ``retry_attempts`` times, only when redis-py failed
  to connect (nothing was sent: the error says ``connecting to``, a sentinel found no primary,
  a demoted primary answered READONLY) or when :func:`~redkeep.redis.policy.may_resend` allows
  it; otherwise :class:`~redkeep.errors.OutcomeUnknown`. Timeouts are not retried.
- At most ``max_connections`` operations are in flight (callers queue for up to
  ``command_timeout``, then ``BackendTimeout``): redis-py's pools raise instead of waiting.
- Replies are raw: redis-py's response callbacks are removed (a Cluster keeps those of its
  own bootstrap commands), so replies match the fast path's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from redis import exceptions as rx
from redis.asyncio import RedisCluster, Sentinel
from redis.asyncio.sentinel import MasterNotFoundError
from redis.backoff import FullJitterBackoff

from redkeep.errors import (
    BackendResponseError,
    BackendUnavailable,
    ConfigError,
)
from redkeep.redis._coalesce import Coalescer
from redkeep.redis._redispy_build import build, never_sent, sentinel_for
from redkeep.redis._slots import PoolSlots
from redkeep.redis.base import Capabilities, Command, CommandObserver, Script
from redkeep.redis.commands import (
    Commands,
    redis_url,
    refuse_state_change,
    settings_options,
)
from redkeep.redis.errors import translate_error
from redkeep.redis.policy import BLOCKING, may_resend, outcome_unknown
from redkeep.redis.replies import parse_info
from redkeep.redis.sentinel import explain_no_primary
from redkeep.redis.urls import RedisTarget, parse_url

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["RedisPyClient"]


class RedisPyClient(PoolSlots, Commands):
    """:class:`~redkeep.redis.base.RedisClient` on redis-py's public API.

    ``url`` takes every form of docs/configuration.md; with ``cluster=True`` a ``redis://``
    URL names any node of a Cluster. URL options win over the keyword arguments they overlap.
    ``coalesce`` is how many round trips may be in flight before further commands are batched
    (0 disables batching).
    """

    def __init__(
        self,
        url: str | RedisTarget,
        *,
        cluster: bool = False,
        connect_timeout: float = 5.0,
        command_timeout: float = 2.0,
        max_connections: int = 50,
        retry_attempts: int = 3,
        retry_base_delay: float = 0.05,
        retry_max_delay: float = 2.0,
        coalesce: int = 1,
        observer: CommandObserver | None = None,
    ) -> None:
        target = (parse_url(url) if isinstance(url, str) else url).with_cluster(cluster)
        self._target = target
        self.transport = {"standalone": "redis-py"}.get(target.kind, target.kind)
        cluster = target.kind == "cluster"
        self.capabilities = Capabilities(
            blocking=True, pubsub=True, cluster=cluster, transactions=not cluster
        )
        self._connect_timeout = target.socket_connect_timeout or connect_timeout
        self.command_timeout = target.socket_timeout or command_timeout
        self._max_connections = target.max_connections or max_connections
        self._observer = observer
        self._cluster = cluster
        self._retry_attempts = retry_attempts
        self._backoff = FullJitterBackoff(cap=retry_max_delay, base=retry_base_delay)
        self._block_cap = max(self.command_timeout * 0.8, 0.01)
        self._slots = asyncio.Semaphore(self._max_connections)
        self._closed = False
        self._sentinel: Sentinel | None = None
        self._wait_clients: dict[float, Any] = {}
        try:
            self._r: Any = self._connect(self.command_timeout)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid Redis URL options: {translate_error(exc)}") from None
        self._co: Coalescer | None = None
        if coalesce > 0 and not cluster:
            self._co = Coalescer(self._single, self._batch, coalesce)

    @classmethod
    def from_settings(
        cls, settings: Settings, observer: CommandObserver | None = None
    ) -> RedisPyClient:
        """Build a client from :class:`~redkeep.config.Settings` (``redis_url`` must be set)."""
        return cls(
            redis_url(settings),
            cluster=settings.redis_cluster,
            **settings_options(settings),
            observer=observer,
        )

    def _connect(self, timeout: float) -> Any:
        """A redis-py client for the target whose reads wait up to ``timeout``."""
        if self._target.kind == "sentinel" and self._sentinel is None:
            self._sentinel = sentinel_for(self._target, self._connect_timeout, timeout)
        return build(
            self._target,
            connect_timeout=self._connect_timeout,
            timeout=timeout,
            max_connections=self._max_connections,
            sentinel=self._sentinel,
        )

    # -- plumbing ------------------------------------------------------------------------------
    def _is_closed(self) -> bool:
        return self._closed

    async def _slot(self, make: Callable[[], Awaitable[Any]]) -> Any:
        """Await ``make()`` inside a slot (the coroutine is created only once it has one)."""
        if self._closed:
            raise BackendUnavailable("redis client is closed")
        await self._acquire()
        try:
            if self._cluster:
                await self._r.initialize()  # no-op unless (re)initialization is pending
            return await make()
        except AttributeError as exc:
            # a cluster connection torn down under us by redis-py's reset
            if self._cluster and _raised_in_redis_py(exc):
                raise BackendUnavailable(
                    "redis cluster connection was reset while in use"
                ) from None
            raise
        finally:
            self._slots.release()

    def _single(self, args: Sequence[Any], **kwargs: Any) -> Awaitable[Any]:
        return self._slot(lambda: self._r.execute_command(*args, **kwargs))

    async def _batch(self, commands: Sequence[Sequence[Any]], transaction: bool = False) -> Any:
        if self._cluster:
            return await self._cluster_batch(commands)

        async def run() -> Any:
            pipe = self._r.pipeline(transaction=transaction)
            for command in commands:
                pipe.execute_command(*command)
            return await pipe.execute(raise_on_error=False)

        return await self._slot(run)

    async def _cluster_batch(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Commands grouped by the slot of their first key: each group in order, the groups
        concurrently (redis-py 5's ``ClusterPipeline`` cannot run without re-sending on
        errors), at most one per pool connection: a batch never queues its own commands for a
        slot past the command timeout. Server errors come back in place; the first connection
        error is raised."""
        groups: dict[Any, list[int]] = {}
        for i, command in enumerate(commands):
            slot = self._r.keyslot(command[1]) if len(command) > 1 else ("node", i)
            groups.setdefault(slot, []).append(i)
        replies: list[Any] = [None] * len(commands)

        async def run(indexes: list[int]) -> None:
            for i in indexes:
                try:
                    replies[i] = await self._single(commands[i])
                except rx.ResponseError as exc:
                    replies[i] = exc

        pending = iter(groups.values())

        async def runner() -> None:
            for indexes in pending:  # shared: each group is taken by one runner
                await run(indexes)

        await asyncio.gather(*(runner() for _ in range(min(len(groups), self._max_connections))))
        return replies

    async def _retrying(
        self, attempt: Callable[[], Awaitable[Any]], resendable: Callable[[], bool]
    ) -> Any:
        """``attempt()``, sent again after a connection error when that is safe."""
        failures = 0
        while True:
            try:
                return await attempt()
            except rx.ConnectionError as exc:
                if isinstance(exc, MasterNotFoundError) and self._sentinel is not None:
                    exc = await explain_no_primary(self._sentinel, self._target, exc)
                failures += 1
                sent = not never_sent(exc)
                if sent and not resendable():
                    raise outcome_unknown(exc) from None
                if failures > self._retry_attempts or self._closed:
                    raise exc from None
                await asyncio.sleep(self._backoff.compute(failures))

    async def _call(self, args: Sequence[Any], **kwargs: Any) -> Any:
        co = self._co
        if kwargs or co is None or str(args[0]).upper() in BLOCKING:
            return await self._retrying(
                lambda: self._single(args, **kwargs), lambda: may_resend(args)
            )
        return await self._retrying(lambda: co.call(args), lambda: may_resend(args))

    async def _cmd(self, *args: Any, **kwargs: Any) -> Any:
        try:
            refuse_state_change(args)
            if self._observer is None:
                return await self._call(args, **kwargs)
            return await self._timed(str(args[0]), self._call(args, **kwargs))
        except Exception as exc:
            raise translate_error(exc) from None

    # -- strings -------------------------------------------------------------------------------
    async def mget(self, keys: Sequence[str]) -> list[str | None]:
        """Values of ``keys`` in order (one MGET per slot on a Cluster)."""
        if not keys:
            return []
        if not self._cluster:
            return cast("list[str | None]", await self._cmd("MGET", *keys))
        groups = self._by_slot(keys)
        replies = await self.pipeline([("MGET", *group) for group in groups.values()])
        values: dict[str, str | None] = {}
        for group, reply in zip(groups.values(), replies, strict=True):
            if isinstance(reply, Exception):
                raise reply
            values.update(zip(group, reply, strict=True))
        return [values[k] for k in keys]

    def _by_slot(self, keys: Sequence[str]) -> dict[int, list[str]]:
        groups: dict[int, list[str]] = {}
        for key in dict.fromkeys(keys):
            groups.setdefault(self._r.keyslot(key), []).append(key)
        return groups

    async def _multi_key(self, name: str, keys: tuple[str, ...]) -> int:
        if not keys:
            return 0
        if not self._cluster or len(keys) == 1:
            return cast(int, await self._cmd(name, *keys))
        if name == "EXISTS":  # counts a key as often as it is named
            groups: list[list[str]] = [[k] for k in keys]
        else:
            groups = list(self._by_slot(keys).values())
        total = 0
        for reply in await self.pipeline([(name, *group) for group in groups]):
            if isinstance(reply, Exception):
                raise reply
            total += int(reply)
        return total

    async def scan_iter(self, match: str, count: int = 500) -> AsyncIterator[str]:
        """Keys matching ``match`` (SCAN on every primary of a Cluster)."""
        targets: list[Any] = [None]
        if self._cluster:
            try:
                await self._r.initialize()
                targets = list(self._r.get_primaries())
            except Exception as exc:
                raise translate_error(exc) from None
        for node in targets:
            extra = {} if node is None else {"target_nodes": node}
            cursor: Any = "0"
            while True:
                reply = await self._cmd("SCAN", cursor, "MATCH", match, "COUNT", count, **extra)
                if isinstance(reply, dict):  # cluster result keyed by node name
                    reply = next(iter(reply.values()))
                cursor, keys = reply
                if isinstance(cursor, dict):  # redis-py's cluster SCAN callback: {node: cursor}
                    cursor = next(iter(cursor.values()))
                for key in keys:
                    yield key
                if str(cursor) == "0":
                    break

    # -- scripts, batches, raw -----------------------------------------------------------------
    async def _wait_for_replicas(
        self, script: Script, call: tuple[Any, ...], replicas: int, wait: float
    ) -> Any:
        if self._cluster:
            raise BackendResponseError(
                "ERR writes acknowledged by replicas (WAIT) are not supported on Redis Cluster yet"
            )
        client = self._wait_clients.get(wait)
        if client is None:  # its reads wait for WAIT on top of a reply
            client = self._wait_clients[wait] = self._connect(self.command_timeout + wait)
        commands = [call, ("WAIT", replicas, max(1, round(wait * 1000)))]

        async def attempt() -> Any:
            async def run() -> Any:
                pipe = client.pipeline(transaction=False)
                for command in commands:
                    pipe.execute_command(*command)
                return await pipe.execute(raise_on_error=False)

            return await self._slot(run)

        async def send() -> list[Any]:
            replies = await self._observed(
                "EVALSHA", self._retrying(attempt, lambda: script.idempotent)
            )
            return [translate_error(r) if isinstance(r, Exception) else r for r in replies]

        return await self._replicated(script, send, replicas, wait)

    async def script_load(self, script: Script) -> str:
        """SCRIPT LOAD (on every primary of a Cluster); the SHA."""
        if self._cluster:
            # "SCRIPT LOAD" as one word is how redis-py routes it (split again on the wire)
            reply = await self._cmd(
                "SCRIPT LOAD", script.source, target_nodes=RedisCluster.PRIMARIES
            )
        else:
            reply = await self._cmd("SCRIPT LOAD", script.source)
        if isinstance(reply, dict):
            reply = next(iter(reply.values()))
        return str(reply)

    async def pipeline(
        self, commands: Sequence[Command], *, transaction: bool = False
    ) -> list[Any]:
        """Raw commands in one round trip; failing commands yield their error in place."""
        if not commands:
            return []
        if transaction and self._cluster:
            raise BackendResponseError(
                "ERR MULTI/EXEC pipelines are not supported on Redis Cluster; "
                "use a Lua script with keys sharing one hash tag"
            )
        for command in commands:
            refuse_state_change(command)
        replies = await self._observed(
            "PIPELINE",
            self._retrying(
                lambda: self._batch(commands, transaction),
                lambda: all(may_resend(c) for c in commands),
            ),
        )
        return [translate_error(r) if isinstance(r, Exception) else r for r in replies]

    # -- server --------------------------------------------------------------------------------
    async def info(self, section: str | None = None) -> dict[str, Any]:
        """INFO parsed into a dict (the first node's on a Cluster)."""
        args = ("INFO",) if section is None else ("INFO", section)
        if self._cluster:
            reply = await self._cmd(*args, target_nodes=RedisCluster.DEFAULT_NODE)
            if (
                isinstance(reply, dict)
                and reply
                and all(isinstance(v, dict) for v in reply.values())
            ):
                reply = next(iter(reply.values()))
        else:
            reply = await self._cmd(*args)
        return parse_info(reply)

    async def close(self) -> None:
        """Close every connection; later calls raise BackendUnavailable."""
        self._closed = True
        if self._co is not None:
            self._co.cancel()
        try:
            for client in (self._r, *self._wait_clients.values()):
                if self._cluster:
                    await client.aclose()
                else:
                    await client.aclose(close_connection_pool=True)
            if self._sentinel is not None:
                for sentinel in self._sentinel.sentinels:
                    await sentinel.aclose()
        except Exception as exc:
            raise translate_error(exc) from None

    def __repr__(self) -> str:
        return f"RedisPyClient(transport={self.transport!r})"


def _raised_in_redis_py(exc: BaseException) -> bool:
    """True when ``exc`` was raised inside redis-py itself (not by a callback of ours)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith("redis.")
