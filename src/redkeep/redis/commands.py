"""Typed Redis commands shared by every transport, built on one raw ``_cmd`` primitive.

:class:`~redkeep.redis.mux.MuxClient`, :class:`~redkeep.redis.redispy.RedisPyClient` and
:class:`~redkeep.redis.upstash.UpstashRestClient` inherit these and implement ``_cmd`` (send one
command, return the raw reply, raise only :mod:`redkeep.errors` exceptions), ``script_load``,
``pipeline`` and ``_wait_for_replicas`` (EVALSHA + WAIT, for ``evalsha(replicas=...)``); each
overrides what its wire protocol does differently (the mux hot path, multi-key splitting on a
Cluster, Upstash's lack of blocking pops and WAIT).

Also here: the helpers the transports share (:func:`settings_options`, :func:`redis_url`,
:func:`set_args`, :func:`refuse_state_change`). Reply conversions are in
:mod:`redkeep.redis.replies`, re-exported here.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, cast

from redkeep.errors import BackendResponseError, ConfigError
from redkeep.redis.base import Command, CommandObserver, Script
from redkeep.redis.errors import translate_error
from redkeep.redis.policy import changes_state
from redkeep.redis.replies import pairs, parse_info, replicated_reply, transaction_replies

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = [
    "Commands",
    "pairs",
    "parse_info",
    "redis_url",
    "refuse_state_change",
    "replicated_reply",
    "set_args",
    "settings_options",
    "transaction_replies",
]


def settings_options(settings: Settings) -> dict[str, Any]:
    """The constructor options every transport takes from ``settings``: timeouts, pool size
    and retries."""
    return {
        "connect_timeout": settings.connect_timeout,
        "command_timeout": settings.command_timeout,
        "max_connections": settings.max_connections,
        "retry_attempts": settings.retry_attempts,
        "retry_base_delay": settings.retry_base_delay,
        "retry_max_delay": settings.retry_max_delay,
    }


def redis_url(settings: Settings) -> str:
    """``REDKEEP_REDIS_URL``; :class:`ConfigError` when it is not set."""
    if settings.redis_url is None:
        raise ConfigError("REDKEEP_REDIS_URL is required for the Redis transport")
    return settings.redis_url.get_secret_value()


def set_args(key: str, value: str, px: int | None, nx: bool, xx: bool) -> list[Any]:
    """The ``SET`` command for :meth:`RedisClient.set`'s arguments."""
    if nx and xx:
        raise ValueError("set(): nx and xx are mutually exclusive")
    args: list[Any] = ["SET", key, value]
    if px is not None:
        args += ("PX", px)
    if nx:
        args.append("NX")
    if xx:
        args.append("XX")
    return args


def refuse_state_change(command: Sequence[Any]) -> None:
    """Raise :class:`BackendResponseError` for a command that would change the state of a
    connection other callers share (see :mod:`redkeep.redis.policy`)."""
    name = changes_state(command)
    if name is not None:
        raise BackendResponseError(
            f"ERR {name} changes the state of the connection it runs on, which redkeep shares: "
            "set the database, client name and protocol in the URL, and use "
            "pipeline(transaction=True) for MULTI/EXEC"
        )


def _nothing() -> None:
    pass


class Commands:
    """The :class:`~redkeep.redis.base.RedisClient` methods whose wire form is the same on
    every transport."""

    transport: str
    _observer: CommandObserver | None
    _block_cap: float
    """The longest server-side wait of a blocking pop (below ``command_timeout``)."""
    _cluster = False
    """Keys are spread over slots, so a multi-key write cannot be one command."""

    async def _cmd(self, *args: Any) -> Any:
        raise NotImplementedError

    async def script_load(self, script: Script) -> str:
        raise NotImplementedError

    async def pipeline(
        self, commands: Sequence[Command], *, transaction: bool = False
    ) -> list[Any]:
        raise NotImplementedError

    async def _wait_for_replicas(
        self, script: Script, call: tuple[Any, ...], replicas: int, wait: float
    ) -> Any:
        """Run ``call`` (an EVALSHA) and ``WAIT replicas`` together (see :meth:`evalsha`)."""
        raise NotImplementedError

    async def _replicated(
        self, script: Script, send: Callable[[], Awaitable[list[Any]]], replicas: int, wait: float
    ) -> Any:
        """``send()`` EVALSHA + WAIT; the script is loaded first (a NOSCRIPT attempt would
        still wait for replicas that have nothing to acknowledge) and again on NOSCRIPT."""
        loaded: set[str] = self.__dict__.setdefault("_replicated_shas", set())
        if script.sha not in loaded:
            await self.script_load(script)
            loaded.add(script.sha)
        replies = await send()
        if str(replies[0]).startswith("NOSCRIPT"):  # e.g. the server restarted since
            await self.script_load(script)
            replies = await send()
        return replicated_reply(replies, replicas, wait)

    async def _timed(self, name: str, awaitable: Awaitable[Any]) -> Any:
        """Await ``awaitable`` reporting its duration and error category to the observer."""
        observer = cast(CommandObserver, self._observer)
        start = perf_counter()
        try:
            result = await awaitable
        except Exception as exc:
            err = translate_error(exc)
            observer.on_command(self.transport, name, perf_counter() - start, type(err).__name__)
            raise err from None
        observer.on_command(self.transport, name, perf_counter() - start, None)
        return result

    async def _observed(self, name: str, awaitable: Awaitable[Any]) -> Any:
        """Await ``awaitable`` as command ``name`` (timed when observed), errors translated."""
        try:
            if self._observer is None:
                return await awaitable
            return await self._timed(name, awaitable)
        except Exception as exc:
            raise translate_error(exc) from None
        finally:
            if inspect.iscoroutine(awaitable):
                awaitable.close()

    def spin_only_while(self, predicate: Callable[[], bool]) -> Callable[[], None]:
        """Busy-poll only while ``predicate()`` is true (ignored where nothing spins)."""
        return _nothing

    async def _multi_key(self, name: str, keys: tuple[str, ...]) -> int:
        return int(await self._cmd(name, *keys)) if keys else 0

    # -- strings and keys ----------------------------------------------------------------------
    async def get(self, key: str) -> str | None:
        """GET."""
        return cast("str | None", await self._cmd("GET", key))

    async def set(
        self, key: str, value: str, *, px: int | None = None, nx: bool = False, xx: bool = False
    ) -> bool:
        """SET with optional PX/NX/XX; True when written."""
        return await self._cmd(*set_args(key, value, px, nx, xx)) is not None

    async def mget(self, keys: Sequence[str]) -> list[str | None]:
        """MGET; values in ``keys`` order."""
        if not keys:
            return []
        return cast("list[str | None]", await self._cmd("MGET", *keys))

    async def mset(self, mapping: Mapping[str, str], *, px: int | None = None) -> None:
        """Write all pairs in one round trip: MSET, or pipelined ``SET k v [PX px]`` with
        ``px`` (and on a Cluster, where one MSET cannot span slots)."""
        if not mapping:
            return
        if px is None and not self._cluster:
            args: list[Any] = ["MSET"]
            for pair in mapping.items():
                args += pair
            await self._cmd(*args)
            return
        tail = () if px is None else ("PX", px)
        for reply in await self.pipeline([("SET", k, v, *tail) for k, v in mapping.items()]):
            if isinstance(reply, Exception):
                raise reply

    async def incrby(self, key: str, delta: int = 1) -> int:
        """INCRBY."""
        return int(await self._cmd("INCRBY", key, delta))

    async def delete(self, *keys: str) -> int:
        """DEL; the number of keys removed."""
        return await self._multi_key("DEL", keys)

    async def unlink(self, *keys: str) -> int:
        """UNLINK; the number of keys removed."""
        return await self._multi_key("UNLINK", keys)

    async def exists(self, *keys: str) -> int:
        """EXISTS; how many of ``keys`` exist."""
        return await self._multi_key("EXISTS", keys)

    async def pexpire(self, key: str, px: int) -> bool:
        """PEXPIRE; False when the key does not exist."""
        return bool(await self._cmd("PEXPIRE", key, px))

    async def pttl(self, key: str) -> int:
        """PTTL in ms; -1 without expiry, -2 when absent."""
        return int(await self._cmd("PTTL", key))

    async def scan_iter(self, match: str, count: int = 500) -> AsyncIterator[str]:
        """SCAN with MATCH/COUNT until the cursor returns to 0."""
        cursor: Any = "0"
        while True:
            cursor, keys = await self._cmd("SCAN", cursor, "MATCH", match, "COUNT", count)
            for key in keys:
                yield key
            if str(cursor) == "0":
                return

    # -- hashes --------------------------------------------------------------------------------
    async def hget(self, key: str, field: str) -> str | None:
        """HGET."""
        return cast("str | None", await self._cmd("HGET", key, field))

    async def hmget(self, key: str, fields: Sequence[str]) -> list[str | None]:
        """HMGET."""
        if not fields:
            return []
        return cast("list[str | None]", await self._cmd("HMGET", key, *fields))

    async def hgetall(self, key: str) -> dict[str, str]:
        """HGETALL as a dict."""
        flat = await self._cmd("HGETALL", key) or []
        if isinstance(flat, dict):
            return flat
        it = iter(flat)
        return dict(zip(it, it, strict=True))

    async def hset(self, key: str, mapping: Mapping[str, str | int | float]) -> int:
        """HSET of every pair; the number of new fields."""
        if not mapping:
            return 0
        args: list[Any] = ["HSET", key]
        for field, value in mapping.items():
            args += (field, value)
        return int(await self._cmd(*args))

    async def hdel(self, key: str, *fields: str) -> int:
        """HDEL."""
        return int(await self._cmd("HDEL", key, *fields)) if fields else 0

    # -- sorted sets ---------------------------------------------------------------------------
    async def zadd(self, key: str, mapping: Mapping[str, float], *, nx: bool = False) -> int:
        """ZADD (``NX`` with ``nx``); the number of new members."""
        if not mapping:
            return 0
        args: list[Any] = ["ZADD", key, "NX"] if nx else ["ZADD", key]
        for member, score in mapping.items():
            args += (repr(float(score)), member)
        return int(await self._cmd(*args))

    async def zrem(self, key: str, *members: str) -> int:
        """ZREM."""
        return int(await self._cmd("ZREM", key, *members)) if members else 0

    async def zcard(self, key: str) -> int:
        """ZCARD."""
        return int(await self._cmd("ZCARD", key))

    async def zscore(self, key: str, member: str) -> float | None:
        """ZSCORE as float, None when absent."""
        score = await self._cmd("ZSCORE", key, member)
        return None if score is None else float(score)

    async def zrange(
        self, key: str, start: int, stop: int, *, withscores: bool = False
    ) -> list[Any]:
        """Members by rank; ``(member, score)`` tuples with ``withscores``."""
        if withscores:
            return pairs(await self._cmd("ZRANGE", key, start, stop, "WITHSCORES"))
        return cast("list[Any]", await self._cmd("ZRANGE", key, start, stop))

    async def zrangebyscore(
        self,
        key: str,
        min: float | str,
        max: float | str,
        *,
        offset: int | None = None,
        count: int | None = None,
        withscores: bool = False,
    ) -> list[Any]:
        """Members with ``min <= score <= max`` (``"(1"`` / ``"-inf"`` syntax accepted)."""
        args: list[Any] = ["ZRANGEBYSCORE", key, min, max]
        if withscores:
            args.append("WITHSCORES")
        if offset is not None or count is not None:
            args += ("LIMIT", offset or 0, -1 if count is None else count)
        reply = await self._cmd(*args)
        return pairs(reply) if withscores else cast("list[Any]", reply)

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

    # -- lists ---------------------------------------------------------------------------------
    async def lpush(self, key: str, *values: str) -> int:
        """LPUSH."""
        return int(await self._cmd("LPUSH", key, *values))

    async def rpush(self, key: str, *values: str) -> int:
        """RPUSH."""
        return int(await self._cmd("RPUSH", key, *values))

    async def lrange(self, key: str, start: int, stop: int) -> list[str]:
        """LRANGE."""
        return cast("list[str]", await self._cmd("LRANGE", key, start, stop))

    async def llen(self, key: str) -> int:
        """LLEN."""
        return int(await self._cmd("LLEN", key))

    # -- scripts -------------------------------------------------------------------------------
    async def evalsha(
        self,
        script: Script,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> Any:
        """EVALSHA; on NOSCRIPT load the script and retry once. With ``replicas``, EVALSHA and
        ``WAIT`` run together on a connection of their own (see the protocol)."""
        call = ("EVALSHA", script.sha, len(keys), *keys, *args)
        if replicas > 0:
            return await self._wait_for_replicas(script, call, replicas, replica_timeout)
        try:
            return await self._cmd(*call)
        except BackendResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.script_load(script)
        return await self._cmd(*call)

    # -- raw, server ---------------------------------------------------------------------------
    async def execute(self, *args: str | int | float) -> Any:
        """One raw command, unprocessed reply."""
        return await self._cmd(*args)

    async def info(self, section: str | None = None) -> dict[str, Any]:
        """INFO parsed into a dict."""
        args = ("INFO",) if section is None else ("INFO", section)
        return parse_info(await self._cmd(*args))

    async def time(self) -> float:
        """Server time in seconds since the epoch."""
        reply = await self._cmd("TIME")
        if isinstance(reply, dict):  # a Cluster's reply keyed by node
            reply = next(iter(reply.values()))
        seconds, micros = reply
        return int(seconds) + int(micros) / 1_000_000

    async def ping(self) -> float:
        """PING; the round trip in seconds."""
        start = perf_counter()
        await self._cmd("PING")
        return perf_counter() - start
