"""The transport-neutral Redis client interface used by the cache and the queue.

Three transports implement :class:`RedisClient`: :class:`~redkeep.redis.mux.MuxClient` (the
multiplexed fast path, standalone Redis over TCP, TLS or a Unix socket),
:class:`~redkeep.redis.redispy.RedisPyClient` (the reference: redis-py's public API, standalone,
Cluster or Sentinel) and :class:`~redkeep.redis.upstash.UpstashRestClient` (Upstash's REST API).
:func:`~redkeep.redis.factory.create_client` picks one from the settings. Values travel as ``str``
(UTF-8 text; bytes that are not valid UTF-8 come back with U+FFFD replacement characters), so the
same code works over both. Every method raises only :mod:`redkeep.errors` exceptions.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from redkeep.redis.policy import declare_idempotent_sha

__all__ = ["Capabilities", "Command", "CommandObserver", "RedisClient", "Script", "expand_includes"]

#: One raw command for :meth:`RedisClient.pipeline`, e.g. ``("SET", "k", "v", "PX", 1000)``.
Command = Sequence[str | int | float]


@runtime_checkable
class CommandObserver(Protocol):
    """Receives one call per command a transport ran (e.g. the metrics module).

    ``command`` is the command name (``"GET"``, ``"EVALSHA"``, ``"PIPELINE"``...), ``seconds``
    the wall time including retries, ``error`` the redkeep error class name (``"BackendTimeout"``)
    or None on success. Must be cheap and must not raise.
    """

    def on_command(self, transport: str, command: str, seconds: float, error: str | None) -> None:
        """Record one finished command."""
        ...


@dataclass(frozen=True)
class Capabilities:
    """What a transport can do beyond the common command set."""

    blocking: bool = True
    """Blocking commands (BZPOPMIN, BLPOP) are available, so workers need not poll."""
    pubsub: bool = True
    """Publish/subscribe is available."""
    cluster: bool = False
    """Keys are spread over slots: multi-key commands need a shared hash tag."""
    transactions: bool = True
    """MULTI/EXEC pipelines are available."""


@dataclass(frozen=True)
class Script:
    """A Lua script, run by SHA with EVALSHA and loaded on NOSCRIPT.

    Scripts live as ``.lua`` files next to the code that runs them; build one with
    :meth:`from_file`. The SHA1 is computed locally, so no round trip is needed to know it.
    """

    name: str
    source: str
    idempotent: bool = False
    """Running the script twice with the same arguments has the effect of running it once, so a
    transport may re-send it when a connection is lost after the request was written (declared
    by a ``-- @idempotent`` line in the script's header comment)."""
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)
        if self.idempotent:
            declare_idempotent_sha(digest)

    @classmethod
    def from_file(cls, path: str | Path) -> Script:
        """Read a script, expanding ``-- @include "lib/x.lua"`` lines (paths relative to the
        including file; each file at most once per script). The SHA is of the expanded text."""
        p = Path(path)
        source = p.read_text(encoding="utf-8")
        expanded = expand_includes(source, p.parent, {p.resolve()})
        return cls(name=p.stem, source=expanded, idempotent=_declares_idempotent(source))


_INCLUDE = re.compile(r'^--\s*@include\s+"([^"]+)"\s*$')


def expand_includes(source: str, base: Path, seen: set[Path]) -> str:
    """``source`` with each ``-- @include "path"`` line replaced by that file's (expanded) text.

    A file already included (or the script itself) is skipped, so shared parts can include
    what they need without duplicates; a missing file raises ``FileNotFoundError`` naming it.
    """
    out: list[str] = []
    for line in source.splitlines(keepends=True):
        match = _INCLUDE.match(line.strip())
        if match is None:
            out.append(line)
            continue
        target = (base / match.group(1)).resolve()
        if target in seen:
            continue
        seen.add(target)
        if not target.is_file():
            raise FileNotFoundError(f"Lua include {match.group(1)!r} not found (from {base})")
        text = target.read_text(encoding="utf-8")
        out.append(f"-- @included {match.group(1)}\n")
        out.append(expand_includes(text, target.parent, seen))
        if not text.endswith("\n"):
            out.append("\n")
    return "".join(out)


def _declares_idempotent(source: str) -> bool:
    """True when the leading comment block has a ``-- @idempotent`` line."""
    for line in source.splitlines():
        stripped = line.strip()
        if not stripped.startswith("--"):
            return False
        if stripped[2:].strip() == "@idempotent":
            return True
    return False


@runtime_checkable
class RedisClient(Protocol):
    """Async Redis operations needed by redkeep, independent of the wire transport.

    Conventions: TTLs are integer milliseconds (``px``); missing keys read as ``None``;
    multi-key methods on a Cluster are split per slot by the transport (non-atomic) unless the
    keys share a hash tag.
    """

    transport: str
    """``"mux"``, ``"redis-py"``, ``"cluster"``, ``"sentinel"`` or ``"upstash"`` (used as a
    metrics label)."""
    capabilities: Capabilities

    # -- strings -------------------------------------------------------------------------------
    async def get(self, key: str) -> str | None: ...
    async def set(
        self, key: str, value: str, *, px: int | None = None, nx: bool = False, xx: bool = False
    ) -> bool:
        """SET with optional PX/NX/XX; True when the value was written."""
        ...

    async def mget(self, keys: Sequence[str]) -> list[str | None]: ...
    async def mset(self, mapping: Mapping[str, str], *, px: int | None = None) -> None:
        """Write all pairs in one round trip (pipelined SET ... PX when ``px`` is given)."""
        ...

    async def incrby(self, key: str, delta: int = 1) -> int: ...
    async def delete(self, *keys: str) -> int: ...
    async def unlink(self, *keys: str) -> int: ...
    async def exists(self, *keys: str) -> int: ...
    async def pexpire(self, key: str, px: int) -> bool: ...
    async def pttl(self, key: str) -> int:
        """Remaining TTL in ms; -1 without expiry, -2 when the key does not exist."""
        ...

    def scan_iter(self, match: str, count: int = 500) -> AsyncIterator[str]:
        """Iterate keys matching ``match`` with SCAN (all masters on a Cluster)."""
        ...

    # -- hashes --------------------------------------------------------------------------------
    async def hget(self, key: str, field: str) -> str | None: ...
    async def hmget(self, key: str, fields: Sequence[str]) -> list[str | None]: ...
    async def hgetall(self, key: str) -> dict[str, str]: ...
    async def hset(self, key: str, mapping: Mapping[str, str | int | float]) -> int: ...
    async def hdel(self, key: str, *fields: str) -> int: ...

    # -- sorted sets ---------------------------------------------------------------------------
    async def zadd(self, key: str, mapping: Mapping[str, float], *, nx: bool = False) -> int: ...
    async def zrem(self, key: str, *members: str) -> int: ...
    async def zcard(self, key: str) -> int: ...
    async def zscore(self, key: str, member: str) -> float | None: ...
    async def zrange(
        self, key: str, start: int, stop: int, *, withscores: bool = False
    ) -> list[Any]:
        """Members by rank; with ``withscores`` a list of ``(member, score)`` tuples."""
        ...

    async def zrangebyscore(
        self,
        key: str,
        min: float | str,
        max: float | str,
        *,
        offset: int | None = None,
        count: int | None = None,
        withscores: bool = False,
    ) -> list[Any]: ...
    async def bzpopmin(
        self,
        keys: Sequence[str],
        timeout: float,  # noqa: ASYNC109 - server-side wait, not a client timeout
    ) -> tuple[str, str, float] | None:
        """Blocking pop: ``(key, member, score)`` or None on timeout.

        Needs ``capabilities.blocking``. Transports may wait less than ``timeout`` (RESP caps the
        wait below ``command_timeout``); callers loop on None.
        """
        ...

    # -- lists ---------------------------------------------------------------------------------
    async def lpush(self, key: str, *values: str) -> int: ...
    async def rpush(self, key: str, *values: str) -> int: ...
    async def lrange(self, key: str, start: int, stop: int) -> list[str]: ...
    async def llen(self, key: str) -> int: ...

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
        """Run ``script`` by SHA; on NOSCRIPT load it and retry once.

        With ``replicas`` > 0, return only once ``WAIT replicas`` confirms that many replicas
        have the write: EVALSHA and WAIT go together on a connection of their own (never one
        other callers share), and :class:`~redkeep.errors.ReplicationTimeout` is raised when
        fewer acknowledge within ``replica_timeout`` seconds (the script did run).
        """
        ...

    async def script_load(self, script: Script) -> str:
        """Load ``script`` (on every master of a Cluster); returns its SHA."""
        ...

    async def pipeline(
        self, commands: Sequence[Command], *, transaction: bool = False
    ) -> list[Any]:
        """Send raw commands in one round trip; returns raw replies in order.

        Replies are not post-processed: integers, strings, ``None`` and nested lists, as the
        server sent them. A command that errors yields its :class:`BackendResponseError` in its
        slot instead of raising (the others still apply); transport failures raise.
        """
        ...

    async def execute(self, *args: str | int | float) -> Any:
        """Run one raw command and return its unprocessed reply."""
        ...

    # -- server --------------------------------------------------------------------------------
    async def ping(self) -> float:
        """PING; returns the round trip in seconds."""
        ...

    async def info(self, section: str | None = None) -> dict[str, Any]: ...
    async def time(self) -> float:
        """Server time (TIME) in seconds since the epoch."""
        ...

    def spin_only_while(self, predicate: Callable[[], bool]) -> Callable[[], None]:
        """Busy-poll ordinary commands (``Settings.busy_poll``) only while ``predicate()`` is
        true, e.g. while a worker runs no job; with several conditions, while all are true.
        Returns the function that removes this condition. Blocking pops keep their own
        adaptive spin; transports that never spin ignore this."""
        ...

    async def close(self) -> None: ...
