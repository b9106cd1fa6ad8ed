"""The fast path: standalone Redis over one multiplexed connection (TCP, TLS or Unix socket).

- Every command that neither blocks nor must run alone shares one connection
  (:class:`~redkeep.redis._multiplexer.Multiplexer`): concurrent callers are pipelined on it,
  and a lone caller busy-polls briefly before parking (``spin``).
- Blocking pops (:data:`~redkeep.redis.policy.BLOCKING`), MULTI/EXEC transactions and writes
  followed by ``WAIT`` run on connections of their own (:class:`~redkeep.redis._lanes.Lanes`),
  at most ``max_connections`` at once (``BackendTimeout`` after ``command_timeout`` when none
  frees).
- Commands that change a connection's state (:func:`~redkeep.redis.policy.changes_state`) are
  refused before anything is sent; the URL sets the database, the client name and the protocol
  for every connection.
- A command whose connection was lost before it was written whole is sent again (with redis-py's
  ``FullJitterBackoff``, ``retry_attempts`` times); one that was written is sent again only when
  :func:`~redkeep.redis.policy.may_resend` allows it, else :class:`~redkeep.errors.OutcomeUnknown`.
  Timeouts are not retried, so a frozen server surfaces as ``BackendTimeout`` after about
  ``command_timeout``. Blocking pops wait at most ``0.8 * command_timeout`` server-side.
- Replies are raw (what the server sent, RESP2 or RESP3); the typed methods of
  :class:`~redkeep.redis.commands.Commands` convert the few that need it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from redis.backoff import FullJitterBackoff

from redkeep.errors import (
    BackendResponseError,
    BackendUnavailable,
    ConfigError,
)
from redkeep.redis._lanes import Lanes
from redkeep.redis._multiplexer import Multiplexer
from redkeep.redis._slots import PoolSlots
from redkeep.redis._wire import ssl_context
from redkeep.redis.base import Capabilities, Command, CommandObserver, Script
from redkeep.redis.commands import (
    Commands,
    redis_url,
    refuse_state_change,
    set_args,
    settings_options,
)
from redkeep.redis.errors import translate_error
from redkeep.redis.policy import BLOCKING, STATEFUL
from redkeep.redis.replies import transaction_replies
from redkeep.redis.urls import RedisTarget, parse_url

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["MuxClient"]

_SPECIAL = BLOCKING | STATEFUL | {"CLIENT"}  # names that do not go straight to the shared path


async def _closed(*args: Any, **kwargs: Any) -> Any:
    raise BackendUnavailable("redis client is closed")


class MuxClient(PoolSlots, Commands):
    """:class:`~redkeep.redis.base.RedisClient` on one multiplexed connection (the fast path).

    ``url`` is ``redis://``, ``rediss://`` (TLS) or ``unix://`` with the options of
    docs/configuration.md (a Cluster or Sentinel needs
    :class:`~redkeep.redis.redispy.RedisPyClient`). URL options win over the keyword
    arguments they overlap. ``spin`` is the busy-poll budget of a lone command
    (``Settings.busy_poll``).
    """

    def __init__(
        self,
        url: str | RedisTarget,
        *,
        connect_timeout: float = 5.0,
        command_timeout: float = 2.0,
        max_connections: int = 50,
        retry_attempts: int = 3,
        retry_base_delay: float = 0.05,
        retry_max_delay: float = 2.0,
        spin: float = 0.0002,
        observer: CommandObserver | None = None,
    ) -> None:
        target = parse_url(url) if isinstance(url, str) else url
        if target.kind != "standalone":
            raise ConfigError(
                f"the mux transport serves standalone Redis only, not a {target.kind}: "
                "set REDKEEP_REDIS_TRANSPORT=redis-py (or auto)"
            )
        self.transport = "mux"
        self.capabilities = Capabilities(blocking=True, pubsub=True, transactions=True)
        connect_timeout = target.socket_connect_timeout or connect_timeout
        command_timeout = target.socket_timeout or command_timeout
        max_connections = target.max_connections or max_connections
        self.command_timeout = command_timeout
        self._observer = observer
        self._block_cap = max(command_timeout * 0.8, 0.01)
        try:
            tls = ssl_context(target.ssl) if target.tls else None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"invalid TLS options in the Redis URL: {exc}") from None
        backoff = FullJitterBackoff(cap=retry_max_delay, base=retry_base_delay)

        def multiplexer(timeout: float = command_timeout) -> Multiplexer:
            return Multiplexer(
                target,
                connect_timeout=connect_timeout,
                timeout=timeout,
                retry_attempts=retry_attempts,
                backoff=backoff,
                spin=spin,
                tls=tls,
            )

        self._new_lane = multiplexer
        self._mux = multiplexer()
        self._lanes = Lanes(multiplexer)
        self._wait_lanes: dict[float, Lanes] = {}
        self._max_connections = max_connections
        self._slots = asyncio.Semaphore(max_connections)
        self._fast: Callable[..., Awaitable[Any]] = self._mux.execute
        self._ex: Callable[..., Awaitable[Any]] = self._route

    @classmethod
    def from_settings(
        cls, settings: Settings, observer: CommandObserver | None = None
    ) -> MuxClient:
        """Build a client from :class:`~redkeep.config.Settings` (``redis_url`` must be set)."""
        return cls(
            redis_url(settings),
            **settings_options(settings),
            spin=settings.busy_poll,
            observer=observer,
        )

    # -- plumbing ------------------------------------------------------------------------------
    def _is_closed(self) -> bool:
        return self._ex is _closed

    async def _on_lane(self, lanes: Lanes, work: Callable[[Lanes], Awaitable[Any]]) -> Any:
        await self._acquire()
        try:
            return await work(lanes)
        finally:
            self._slots.release()

    def _route(self, *args: Any) -> Awaitable[Any]:
        name = args[0]
        if isinstance(name, str) and name.upper() in _SPECIAL:
            refuse_state_change(args)
            if name.upper() in BLOCKING:
                return self._on_lane(self._lanes, lambda lanes: lanes.execute(*args))
        return self._fast(*args)

    async def _cmd(self, *args: Any) -> Any:
        try:
            if self._observer is None:
                return await self._ex(*args)
            return await self._timed(args[0], self._ex(*args))
        except Exception as exc:
            raise translate_error(exc) from None

    def spin_only_while(self, predicate: Callable[[], bool]) -> Callable[[], None]:
        """Busy-poll the shared connection only while ``predicate()`` (and every other such
        condition) is true; blocking pops keep their own adaptive spin. Returns the function
        that removes the condition."""
        conditions = self._mux.spin_conditions
        conditions.append(predicate)

        def remove() -> None:
            if predicate in conditions:
                conditions.remove(predicate)

        return remove

    # -- hot path ------------------------------------------------------------------------------
    async def get(self, key: str) -> str | None:
        """GET ``key``."""
        try:
            if self._observer is None:
                return cast("str | None", await self._fast("GET", key))
            return cast("str | None", await self._timed("GET", self._fast("GET", key)))
        except Exception as exc:
            raise translate_error(exc) from None

    async def set(
        self, key: str, value: str, *, px: int | None = None, nx: bool = False, xx: bool = False
    ) -> bool:
        """SET with optional PX/NX/XX; True when written."""
        args = set_args(key, value, px, nx, xx)
        try:
            if self._observer is None:
                return await self._fast(*args) is not None
            return await self._timed("SET", self._fast(*args)) is not None
        except Exception as exc:
            raise translate_error(exc) from None

    # -- scripts, batches, raw -----------------------------------------------------------------
    async def evalsha(
        self,
        script: Script,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> Any:
        """:meth:`Commands.evalsha`, sent straight on the shared connection (the hot path: no
        routing as in ``_cmd``)."""
        call = ("EVALSHA", script.sha, len(keys), *keys, *args)
        if replicas > 0:
            return await self._wait_for_replicas(script, call, replicas, replica_timeout)
        try:
            try:
                if self._observer is None:
                    return await self._fast(*call)
                return await self._timed("EVALSHA", self._fast(*call))
            except BackendResponseError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
            await self.script_load(script)
            return await self._cmd(*call)
        except Exception as exc:
            raise translate_error(exc) from None

    async def _wait_for_replicas(
        self, script: Script, call: tuple[Any, ...], replicas: int, wait: float
    ) -> Any:
        lanes = self._wait_lanes.get(wait)
        if lanes is None:  # reads on these lanes may wait for WAIT on top of a reply
            lanes = self._wait_lanes[wait] = Lanes(
                lambda: self._new_lane(self.command_timeout + wait)
            )
        commands = [call, ("WAIT", replicas, max(1, round(wait * 1000)))]

        def send() -> Awaitable[list[Any]]:
            return self._observed(
                "EVALSHA",
                self._on_lane(
                    lanes, lambda ls: ls.execute_many(commands, resend=script.idempotent)
                ),
            )

        return await self._replicated(script, send, replicas, wait)

    async def script_load(self, script: Script) -> str:
        """SCRIPT LOAD; the SHA."""
        return str(await self._cmd("SCRIPT LOAD", script.source))

    async def pipeline(
        self, commands: Sequence[Command], *, transaction: bool = False
    ) -> list[Any]:
        """Raw commands in one round trip; failing commands yield their error in place."""
        if not commands:
            return []
        for command in commands:
            refuse_state_change(command)
        if self._ex is _closed:
            raise BackendUnavailable("redis client is closed")
        if transaction:
            batch = [("MULTI",), *commands, ("EXEC",)]
            replies = await self._observed(
                "PIPELINE", self._on_lane(self._lanes, lambda ls: ls.execute_many(batch))
            )
            replies = transaction_replies(replies)
        elif any(str(c[0]).upper() in BLOCKING for c in commands):
            replies = await self._observed(
                "PIPELINE", self._on_lane(self._lanes, lambda ls: ls.execute_many(commands))
            )
        else:
            replies = await self._observed("PIPELINE", self._mux.execute_many(commands))
        return [translate_error(r) if isinstance(r, Exception) else r for r in replies]

    async def close(self) -> None:
        """Close every connection; later calls raise BackendUnavailable."""
        self._ex = self._fast = _closed
        self._mux.close()
        self._lanes.close()
        for lanes in self._wait_lanes.values():
            lanes.close()

    def __repr__(self) -> str:
        return "MuxClient()"
