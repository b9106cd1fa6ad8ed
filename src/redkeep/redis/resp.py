"""RESP transport: redis-py asyncio (with hiredis) for standalone Redis and Redis Cluster.

Design notes:

- Replies are raw: the client's response callbacks are removed (except INFO and the cluster's
  own bootstrap commands), so ``pipeline`` returns what the server sent and the typed methods
  convert the few replies that need it. This also saves redis-py's per-reply callback work.
- Standalone: every command that neither blocks nor changes connection state runs on one
  multiplexed connection (:class:`~redkeep.redis._mux.Multiplexer`): concurrent callers are
  pipelined on it, and a lone caller busy-polls briefly before parking (``spin``). Blocking
  pops (``_lanes.BLOCKING``: BZPOPMIN, BLPOP...) take a slot (below) and a connection of their
  own (:class:`~redkeep.redis._lanes.BlockingLanes`), kept for the next pop. Connection-state
  commands (``_mux.POOLED``: MULTI, CLIENT, SELECT...) and TLS go through
  :class:`~redkeep.redis._fastconn.PooledExecutor`: a slot of an
  ``asyncio.Semaphore(max_connections)`` (taken without suspending when one is free;
  ``BackendTimeout`` after ``command_timeout`` when none frees), a connection from redis-py's
  plain ``ConnectionPool`` lists, send, read. MULTI/EXEC pipelines and INFO go through redis-py
  in a slot. Errors are translated by :func:`redkeep.redis.errors.translate_error`; the
  observer costs nothing when absent.
- Connection errors are retried by redis-py's ``Retry`` with ``FullJitterBackoff`` (present in
  redis-py 5.0 and 8.x). Timeouts are not retried, so a frozen server surfaces as
  :class:`~redkeep.errors.BackendTimeout` after about ``command_timeout``.
- Blocking pops wait at most ``0.8 * command_timeout`` server-side, so they never trip the
  socket timeout; callers simply loop on ``None``.
- Cluster: redis-py's per-node pools raise ``MaxConnectionsError`` instead of waiting (redis-py
  #3135, #2522), so a semaphore of ``max_connections`` bounds the operations in flight and
  callers queue on it, as on the standalone pool. Each operation first awaits
  ``RedisCluster.initialize()``: redis-py 8 resolves a command's routing *before* its lazy
  initialization, so commands racing a (re)initialization went to the default node, got MOVED,
  and every 5th MOVED made redis-py ``aclose()`` all connections, including ones other tasks
  were using (``'NoneType' object has no attribute 'writelines'``). ``reinitialize_steps=0``
  keeps MOVED from triggering that reset.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from redis import exceptions as rx
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import FullJitterBackoff

from redkeep.errors import (
    BackendResponseError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    register_secret,
)
from redkeep.redis._fastconn import FastSendConnection, PooledExecutor
from redkeep.redis._lanes import BLOCKING, BlockingLanes
from redkeep.redis._mux import Multiplexer, pooled
from redkeep.redis.base import Capabilities, Command, CommandObserver, Script
from redkeep.redis.commands import Commands, set_args
from redkeep.redis.errors import translate_error

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["RespClient"]

_KEEP_CALLBACKS = ("CLUSTER", "COMMAND", "INFO")
_POOL_EXHAUSTED = "redis connection pool exhausted: no connection became free"


async def _closed(*args: Any, **kwargs: Any) -> Any:
    raise BackendUnavailable("redis client is closed")


def _raised_in_redis_py(exc: BaseException) -> bool:
    """True when ``exc`` was raised inside redis-py itself (not by a callback of ours)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith("redis.")


def _flat_pairs(mapping: Mapping[str, Any]) -> list[Any]:
    out: list[Any] = []
    for k, v in mapping.items():
        out.append(k)
        out.append(v)
    return out


class RespClient(Commands):
    """:class:`~redkeep.redis.base.RedisClient` over the Redis protocol (standalone or Cluster).

    ``url`` is ``redis://``, ``rediss://`` (TLS; redis-py query options such as
    ``?ssl_ca_certs=/path`` apply) or ``unix://``. With ``cluster=True`` the URL names any node.
    ``spin`` is the busy-poll budget of a lone standalone command (``Settings.busy_poll``).
    """

    def __init__(
        self,
        url: str,
        *,
        cluster: bool = False,
        connect_timeout: float = 5.0,
        command_timeout: float = 2.0,
        max_connections: int = 50,
        retry_attempts: int = 3,
        retry_base_delay: float = 0.05,
        retry_max_delay: float = 2.0,
        spin: float = 0.0002,
        observer: CommandObserver | None = None,
    ) -> None:
        try:
            parts = urlsplit(url)
            register_secret(parts.password)
        except ValueError as exc:
            raise ConfigError(f"invalid Redis URL: {exc}") from None
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConfigError("Redis URL must start with redis://, rediss:// or unix://")
        self.transport = "cluster" if cluster else "resp"
        self.capabilities = Capabilities(
            blocking=True, pubsub=True, cluster=cluster, transactions=not cluster
        )
        self.command_timeout = command_timeout
        self._observer = observer
        self._cluster = cluster
        self._block_cap = max(command_timeout * 0.8, 0.01)
        self._backoff = FullJitterBackoff(cap=retry_max_delay, base=retry_base_delay)
        retry = Retry(self._backoff, retry_attempts, supported_errors=(rx.ConnectionError,))
        options: dict[str, Any] = {
            "decode_responses": True,
            "encoding_errors": "replace",
            "socket_timeout": command_timeout,
            "socket_connect_timeout": connect_timeout,
            "retry": retry,
            # redis-py 5.x retries a command only for errors listed here (8.x uses ``retry``)
            "retry_on_error": [rx.ConnectionError],
        }
        self._pool: Any = None
        try:
            if cluster:
                self._r: Any = RedisCluster.from_url(
                    url,
                    # the semaphore below is the real bound; the headroom covers connections
                    # redis-py 8 still recycles after a topology refresh (redis-py #3929)
                    max_connections=2 * max_connections,
                    reinitialize_steps=0,
                    **options,
                )
            else:
                if parts.scheme == "redis":  # rediss:// and unix:// keep redis-py's classes
                    options["connection_class"] = FastSendConnection
                # the semaphore below is the bound; redis-py's own limit is only a backstop
                self._pool = ConnectionPool.from_url(
                    url, max_connections=max_connections, **options
                )
                self._r = Redis(connection_pool=self._pool)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"invalid Redis URL options: {translate_error(exc)}") from None
        callbacks = self._r.response_callbacks
        for name in list(callbacks):
            if not str(name).upper().startswith(_KEEP_CALLBACKS):
                del callbacks[name]
        self._max_connections = max_connections
        self._slots = asyncio.Semaphore(max_connections)
        self._pool_timeout = command_timeout
        self._ex: Callable[..., Awaitable[Any]] = self._cluster_ex
        self._fast = self._ex  # commands known not to block: get, set, evalsha
        self._many: Callable[[Sequence[Command]], Awaitable[list[Any]]] | None = None
        self._mux: Multiplexer | None = None
        self._lanes: BlockingLanes | None = None
        if not cluster:
            executor = PooledExecutor(
                self._pool, self._slots, self._acquire, retry_attempts, self._backoff
            )
            self._pooled_ex = executor.execute
            if executor.lists:
                self._many = executor.execute_many
            if parts.scheme != "rediss":  # TLS stays on redis-py's connections

                def multiplexer(spin: float) -> Multiplexer:
                    return Multiplexer(
                        dict(self._pool.connection_kwargs),
                        connect_timeout=connect_timeout,
                        timeout=command_timeout,
                        retry_attempts=retry_attempts,
                        backoff=self._backoff,
                        spin=spin,
                    )

                self._mux = multiplexer(spin)
                self._lanes = BlockingLanes(lambda: multiplexer(spin))
                self._fast = self._mux.execute
                self._ex = self._standalone_ex
            else:
                self._ex = self._fast = self._pooled_ex

    @classmethod
    def from_settings(
        cls, settings: Settings, observer: CommandObserver | None = None
    ) -> RespClient:
        """Build a client from :class:`~redkeep.config.Settings` (``redis_url`` must be set)."""
        if settings.redis_url is None:
            raise ConfigError("REDKEEP_REDIS_URL is required for the Redis transport")
        return cls(
            settings.redis_url.get_secret_value(),
            cluster=settings.redis_cluster,
            connect_timeout=settings.connect_timeout,
            command_timeout=settings.command_timeout,
            max_connections=settings.max_connections,
            retry_attempts=settings.retry_attempts,
            retry_base_delay=settings.retry_base_delay,
            retry_max_delay=settings.retry_max_delay,
            spin=settings.busy_poll,
            observer=observer,
        )

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def pool_in_use(self) -> int | None:
        """Connections checked out right now (operations holding one of ``max_connections``)."""
        free = getattr(self._slots, "_value", None)
        return None if free is None else self._max_connections - int(free)

    async def _acquire(self) -> None:
        """Take one of the ``max_connections`` slots, waiting up to ``command_timeout``."""
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns without suspending
            return
        try:
            async with asyncio.timeout(self._pool_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise BackendTimeout(_POOL_EXHAUSTED) from None
        if self._ex is _closed:  # closed while waiting; redis-py would reconnect
            self._slots.release()
            raise BackendUnavailable("redis client is closed")

    async def _slot_op(self, awaitable: Awaitable[Any]) -> Any:
        """Await one pooled operation (pipeline, cluster command) inside a slot."""
        try:
            await self._acquire()
        except BaseException:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            raise
        try:
            if self._cluster:
                await self._r.initialize()  # no-op unless (re)initialization is pending
            return await awaitable
        except AttributeError as exc:
            # a connection torn down under us by redis-py's cluster reset (see module notes)
            if self._cluster and _raised_in_redis_py(exc):
                raise BackendUnavailable(
                    "redis cluster connection was reset while in use"
                ) from None
            raise
        finally:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # no-op once awaited; frees it when we raised before
            self._slots.release()

    def _cluster_ex(self, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return self._slot_op(self._r.execute_command(*args, **kwargs))

    def _standalone_ex(self, *args: Any) -> Awaitable[Any]:
        if pooled(args[0]):
            if self._lanes is not None and str(args[0]).upper() in BLOCKING:
                return self._lane_ex(*args)
            return self._pooled_ex(*args)
        return self._fast(*args)

    def spin_only_while(self, predicate: Callable[[], bool]) -> Callable[[], None]:
        """Busy-poll the shared connection only while ``predicate()`` (and every other such
        condition) is true (see :mod:`redkeep.redis._mux`); blocking pops keep their own
        adaptive spin. Returns the function that removes the condition."""
        if self._mux is None:
            return super().spin_only_while(predicate)  # TLS and Cluster never spin
        conditions = self._mux.spin_conditions
        conditions.append(predicate)

        def remove() -> None:
            if predicate in conditions:
                conditions.remove(predicate)

        return remove

    async def _lane_ex(self, *args: Any) -> Any:
        """A blocking pop on a connection of its own, inside a slot of ``max_connections``."""
        assert self._lanes is not None
        await self._acquire()
        try:
            return await self._lanes.execute(*args)
        finally:
            self._slots.release()

    async def _cmd(self, *args: Any, **kwargs: Any) -> Any:
        try:
            if self._observer is None:
                return await self._ex(*args, **kwargs)
            return await self._timed(args[0], self._ex(*args, **kwargs))
        except Exception as exc:
            raise translate_error(exc) from None

    async def _run(self, name: str, awaitable: Awaitable[Any]) -> Any:
        if self._ex is _closed:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            raise BackendUnavailable("redis client is closed")
        awaitable = self._slot_op(awaitable)
        try:
            if self._observer is None:
                return await awaitable
            return await self._timed(name, awaitable)
        except Exception as exc:
            raise translate_error(exc) from None

    # -- strings -------------------------------------------------------------------------------
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

    async def mget(self, keys: Sequence[str]) -> list[str | None]:
        """Values of ``keys`` in order (per-slot MGETs on a Cluster)."""
        if not keys:
            return []
        if self._cluster:
            return cast("list[str | None]", await self._run("MGET", self._r.mget_nonatomic(keys)))
        return cast("list[str | None]", await self._cmd("MGET", *keys))

    async def mset(self, mapping: Mapping[str, str], *, px: int | None = None) -> None:
        """Write all pairs in one round trip; with ``px`` as pipelined ``SET k v PX px``."""
        if not mapping:
            return
        if px is None and not self._cluster:
            await self._cmd("MSET", *_flat_pairs(mapping))
            return
        pipe = self._r.pipeline(transaction=False)
        for key, value in mapping.items():
            if px is None:
                pipe.execute_command("SET", key, value)
            else:
                pipe.execute_command("SET", key, value, "PX", px)
        await self._run("MSET", pipe.execute())

    async def _multi_key(self, name: str, keys: tuple[str, ...]) -> int:
        if not keys:
            return 0
        if self._cluster and len(keys) > 1:
            method = {"DEL": self._r.delete, "UNLINK": self._r.unlink, "EXISTS": self._r.exists}
            return cast(int, await self._run(name, method[name](*keys)))
        return cast(int, await self._cmd(name, *keys))

    async def scan_iter(self, match: str, count: int = 500) -> AsyncIterator[str]:
        """Keys matching ``match`` (SCAN on every primary of a Cluster)."""
        targets: list[Any] = [None]
        if self._cluster:
            try:
                targets = list(self._r.get_primaries())
                if not targets:
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

    # -- sorted sets ---------------------------------------------------------------------------
    async def bzpopmin(
        self,
        keys: Sequence[str],
        timeout: float,  # noqa: ASYNC109 - server-side wait, not a client timeout
    ) -> tuple[str, str, float] | None:
        """Blocking pop of the lowest member; waits ``min(timeout, 0.8 * command_timeout)``."""
        wait = self._block_cap if timeout <= 0 else min(timeout, self._block_cap)
        reply = await self._cmd("BZPOPMIN", *keys, round(wait, 3))
        if reply is None:
            return None
        key, member, score = reply
        return key, member, float(score)

    # -- scripts, batches, raw -----------------------------------------------------------------
    async def evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA; on NOSCRIPT load the script (all primaries on a Cluster) and retry once."""
        try:
            try:
                if self._observer is None:
                    return await self._fast("EVALSHA", script.sha, len(keys), *keys, *args)
                return await self._timed(
                    "EVALSHA", self._fast("EVALSHA", script.sha, len(keys), *keys, *args)
                )
            except rx.NoScriptError:
                pass
            except BackendResponseError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
            await self.script_load(script)
            return await self._cmd("EVALSHA", script.sha, len(keys), *keys, *args)
        except Exception as exc:
            raise translate_error(exc) from None

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
        many = self._many
        if self._mux is not None and not any(pooled(c[0]) for c in commands):
            many = self._mux.execute_many
        if many is not None and not transaction:
            try:
                if self._observer is None:
                    replies = await many(commands)
                else:
                    replies = await self._timed("PIPELINE", many(commands))
            except Exception as exc:
                raise translate_error(exc) from None
        else:
            pipe = (
                self._r.pipeline() if self._cluster else self._r.pipeline(transaction=transaction)
            )
            for command in commands:
                pipe.execute_command(*command)
            replies = await self._run("PIPELINE", pipe.execute(raise_on_error=False))
        return [translate_error(r) if isinstance(r, Exception) else r for r in replies]

    # -- server --------------------------------------------------------------------------------
    async def info(self, section: str | None = None) -> dict[str, Any]:
        """INFO parsed into a dict (the first node's on a Cluster)."""
        args = ("INFO",) if section is None else ("INFO", section)
        if self._cluster:
            reply = await self._cmd(*args, target_nodes=RedisCluster.DEFAULT_NODE)
        else:  # through redis-py, for its INFO parser
            reply = await self._run("INFO", self._r.execute_command(*args))
        # A cluster may answer {node_name: info}; a plain INFO dict has scalar values too.
        if isinstance(reply, dict) and reply and all(isinstance(v, dict) for v in reply.values()):
            return cast("dict[str, Any]", next(iter(reply.values())))
        return cast("dict[str, Any]", reply)

    async def time(self) -> float:
        """Server time in seconds since the epoch."""
        reply = await self._cmd("TIME")
        if isinstance(reply, dict):
            reply = next(iter(reply.values()))
        seconds, micros = reply
        return int(seconds) + int(micros) / 1_000_000

    async def close(self) -> None:
        """Close every pooled connection; later calls raise BackendUnavailable."""
        self._ex = self._fast = _closed
        self._many = None
        if self._mux is not None:
            self._mux.close()
        if self._lanes is not None:
            self._lanes.close()
        try:
            if self._cluster:
                await self._r.aclose()
            else:
                await self._r.aclose(close_connection_pool=True)
        except Exception as exc:
            raise translate_error(exc) from None

    def __repr__(self) -> str:
        return f"RespClient(transport={self.transport!r})"
