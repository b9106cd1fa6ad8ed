"""Which commands a transport may re-send, which block a connection, which change its state.

One table for every transport, so that they all make the same decisions:

- :func:`may_resend`: a command whose request was written but whose reply was lost (the
  connection dropped in between) may have run on the server. It is sent again only when running
  it twice has the effect of running it once: reads, the plain writes listed in
  :data:`IDEMPOTENT` (with the options that keep them so), and scripts declared
  ``-- @idempotent`` (:class:`~redkeep.redis.base.Script`, registered here by SHA). Anything
  else fails with :class:`~redkeep.errors.OutcomeUnknown` and the caller decides. A command that
  was never written (connect failure, refused handshake) may always be sent again. Replies that
  count changes (``DEL``, ``HSET``, ``ZADD``...) may then count less than the first run did.
- :data:`BLOCKING`: commands that hold their connection until they return; they never share
  a multiplexed or coalesced connection.
- :func:`changes_state`: commands that change the connection they run on (database,
  subscription, transaction, tracking, client name...). Transports refuse them in ``execute``
  and ``pipeline`` (``pipeline(transaction=True)`` is how to run MULTI/EXEC), so no connection
  whose state changed ever goes back to a shared pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redkeep.errors import OutcomeUnknown

__all__ = [
    "BLOCKING",
    "IDEMPOTENT",
    "STATEFUL",
    "STATEFUL_CLIENT",
    "changes_state",
    "declare_idempotent_sha",
    "may_resend",
    "outcome_unknown",
]

BLOCKING = frozenset({
    "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
    "XREAD", "XREADGROUP", "WAIT", "WAITAOF",
})  # fmt: skip
"""Commands that may hold their connection until they return."""

_READS = frozenset({
    "GET", "MGET", "STRLEN", "GETRANGE", "EXISTS", "TYPE", "TTL", "PTTL", "EXPIRETIME",
    "PEXPIRETIME", "HGET", "HMGET", "HGETALL", "HLEN", "HKEYS", "HVALS", "HEXISTS", "HSTRLEN",
    "HSCAN", "ZSCORE", "ZMSCORE", "ZCARD", "ZCOUNT", "ZRANK", "ZREVRANK", "ZRANGE",
    "ZRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYSCORE", "ZRANGEBYLEX", "ZSCAN", "LRANGE", "LLEN",
    "LINDEX", "LPOS", "SMEMBERS", "SISMEMBER", "SMISMEMBER", "SCARD", "SSCAN", "XLEN", "XRANGE",
    "XREVRANGE", "XINFO", "XPENDING", "SCAN", "KEYS", "DBSIZE", "RANDOMKEY", "PING", "ECHO",
    "TIME", "INFO", "LASTSAVE", "ROLE", "MEMORY", "OBJECT", "DUMP", "PFCOUNT", "GETBIT",
    "BITCOUNT", "BITPOS", "GEOPOS", "GEODIST", "GEOSEARCH", "SLOWLOG", "COMMAND", "CONFIG",
    "LATENCY", "SCRIPT", "FUNCTION", "CLUSTER", "SENTINEL", "ACL",
})  # fmt: skip

_WRITES = frozenset({
    "MSET", "PSETEX", "SETEX", "DEL", "UNLINK", "HSET", "HMSET", "HDEL", "ZREM",
    "ZREMRANGEBYSCORE", "ZREMRANGEBYRANK", "SADD", "SREM", "PEXPIRE", "EXPIRE", "PEXPIREAT",
    "EXPIREAT", "PERSIST", "SETRANGE", "SETBIT", "LSET", "PFADD", "XDEL", "XACK", "LTRIM",
})  # fmt: skip

IDEMPOTENT = _READS | _WRITES | {"SET", "ZADD"}
"""Commands that may be re-sent after a lost reply (``SET`` and ``ZADD`` depend on their
options: see :func:`may_resend`). Not in it, among others: INCR/INCRBY/DECR, APPEND, LPUSH,
RPUSH, LPOP, RPOP, ZPOPMIN, BZPOPMIN, SPOP, GETDEL, GETSET, RENAME, PUBLISH, XADD, EVAL,
EVALSHA of a script not declared idempotent, SETNX/HSETNX and ``SET ... NX`` (a re-sent one
would report that another client won)."""

# ``SCRIPT``/``CONFIG``/``CLIENT`` subcommands that are not harmless reads
_UNSAFE_SUBCOMMANDS = frozenset({"FLUSH", "KILL", "SET", "RESETSTAT", "REWRITE", "DELETE"})

STATEFUL = frozenset({
    "SELECT", "AUTH", "HELLO", "RESET", "QUIT", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH",
    "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
    "MONITOR", "READONLY", "READWRITE", "SYNC", "PSYNC", "REPLCONF", "ASKING",
})  # fmt: skip
"""Commands that change the state of the connection they run on (and ``CLIENT`` subcommands
in :data:`STATEFUL_CLIENT`)."""
STATEFUL_CLIENT = frozenset({
    "SETNAME", "SETINFO", "TRACKING", "CACHING", "REPLY", "NO-EVICT", "NO-TOUCH",
})  # fmt: skip

_idempotent_shas: set[str] = set()


def declare_idempotent_sha(sha: str) -> None:
    """Record that the script with this SHA1 may be re-sent (``Script`` calls this)."""
    _idempotent_shas.add(sha.lower())


def _words(args: Sequence[Any]) -> list[str]:
    """The command name split like redis-py does (``"SCRIPT LOAD"``), upper case."""
    name = args[0]
    head = name.decode() if isinstance(name, bytes) else str(name)
    return head.upper().split()


def _options(args: Sequence[Any], start: int) -> set[str]:
    return {str(a).upper() for a in args[start:] if isinstance(a, str | bytes)}


def may_resend(args: Sequence[Any]) -> bool:
    """True when ``args`` (one raw command) may be sent again after its reply was lost."""
    if not args:
        return False
    words = _words(args)
    name = words[0]
    if name in ("EVALSHA", "EVALSHA_RO"):
        sha = args[1] if len(words) == 1 and len(args) > 1 else None
        return isinstance(sha, str) and sha.lower() in _idempotent_shas
    if name not in IDEMPOTENT:
        return False
    if name == "SET":  # GET returns the previous value; NX reports who won
        return not (_options(args, 3) & {"GET", "NX"})
    if name == "ZADD":  # INCR adds again; NX/GT/LT keep it idempotent
        return "INCR" not in _options(args, 2)
    if name in ("SCRIPT", "CONFIG", "CLIENT", "FUNCTION", "ACL", "CLUSTER", "SENTINEL"):
        sub = words[1] if len(words) > 1 else (str(args[1]).upper() if len(args) > 1 else "")
        return sub not in _UNSAFE_SUBCOMMANDS
    return True


def changes_state(args: Sequence[Any]) -> str | None:
    """The command's name when it changes the state of the connection it runs on, else None."""
    if not args:
        return None
    words = _words(args)
    name = words[0]
    if name in STATEFUL:
        return name
    if name == "CLIENT":
        sub = words[1] if len(words) > 1 else (str(args[1]).upper() if len(args) > 1 else "")
        if sub in STATEFUL_CLIENT:
            return f"CLIENT {sub}"
    return None


def outcome_unknown(exc: BaseException) -> OutcomeUnknown:
    """The error for a command whose connection was lost after it was sent."""
    return OutcomeUnknown(
        f"redis connection lost after the command was sent ({exc}); it may have run, "
        "so it was not sent again"
    )
