"""Checks that a Redis Lua script touches only keys passed to it in ``KEYS``.

Redis documents that a script must access only the keys given in ``KEYS`` (never keys built from
arguments or from data read by the script); proxies, Cluster and managed services rely on it.

- :func:`key_violations` is the static check: every key argument of each ``redis.call`` /
  ``redis.pcall`` in a script's source must be ``KEYS[...]``, ``K.<name>`` or ``K[...]`` (``K``
  being the table the queue's script loader builds from ``KEYS``).
- :func:`guarded` is the dynamic check: the same script with a prelude that shadows ``redis``
  with a wrapper refusing (with an error reply) any command on a key that is not in ``KEYS``.
  ``tests/queue/conftest.py`` runs the queue test suites with every script guarded.
"""

from __future__ import annotations

import dataclasses
import re

from redkeep.redis.base import Script

__all__ = ["KEY_ARGS", "guarded", "key_violations", "redis_calls"]

# Which arguments of a command are keys: "first" (argument 1), "all", or "none".
_FIRST = """GET SET INCR INCRBY PEXPIRE PTTL HGET HSET HSETNX HMGET HDEL HGETALL HEXISTS HINCRBY
HLEN ZADD ZREM ZCARD ZCOUNT ZRANGE ZRANGEBYSCORE ZREVRANGE ZPOPMIN ZREMRANGEBYSCORE ZSCORE XADD
XRANGE XREVRANGE XLEN LPUSH RPUSH LRANGE TYPE
HKEYS ZRANGEBYLEX ZREMRANGEBYLEX ZLEXCOUNT ZREMRANGEBYRANK"""
KEY_ARGS: dict[str, str] = {
    **dict.fromkeys(_FIRST.split(), "first"),
    **dict.fromkeys(("DEL", "EXISTS", "UNLINK"), "all"),
    "TIME": "none",
}

_KEY_EXPR = re.compile(r"^(KEYS\[[^\]]+\]|K\.[A-Za-z_]\w*|K\[[^\]]+\])$")
_CALL = re.compile(r"\bredis\.p?call\s*\(")


def _strip_comments(source: str) -> str:
    """Lua source without ``--`` comments (string literals kept)."""
    out: list[str] = []
    for line in source.splitlines():
        quote: str | None = None
        i = 0
        while i < len(line):
            c = line[i]
            if quote:
                if c == "\\":
                    i += 1
                elif c == quote:
                    quote = None
            elif c in "'\"":
                quote = c
            elif line.startswith("--", i):
                line = line[:i]
                break
            i += 1
        out.append(line)
    return "\n".join(out)


def _split_args(text: str, start: int) -> tuple[list[str], int]:
    """Top-level comma-separated arguments of the call whose ``(`` is just before ``start``."""
    args: list[str] = []
    depth = 0
    quote: str | None = None
    current: list[str] = []
    i = start
    while i < len(text):
        c = text[i]
        if quote:
            current.append(c)
            if c == "\\":
                current.append(text[i + 1])
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
            current.append(c)
        elif c in "([{":
            depth += 1
            current.append(c)
        elif c in ")]}":
            if depth == 0:
                args.append("".join(current).strip())
                return args, i
            depth -= 1
            current.append(c)
        elif c == "," and depth == 0:
            args.append("".join(current).strip())
            current = []
        else:
            current.append(c)
        i += 1
    raise ValueError("unbalanced parentheses in redis.call")


def redis_calls(source: str) -> list[tuple[int, list[str]]]:
    """Every ``redis.call``/``redis.pcall`` of ``source``: (line number, argument texts)."""
    text = _strip_comments(source)
    calls = []
    for match in _CALL.finditer(text):
        args, _ = _split_args(text, match.end())
        calls.append((text.count("\n", 0, match.start()) + 1, args))
    return calls


def key_violations(source: str) -> list[str]:
    """Why each ``redis.call`` of ``source`` may touch a key not in KEYS (empty: none)."""
    problems = []
    for line, args in redis_calls(source):
        literal = re.fullmatch(r"'([A-Za-z]+)'|\"([A-Za-z]+)\"", args[0])
        if literal is None:
            # A command chosen at run time: its key must still be argument 1.
            spec = "first"
        else:
            command = (literal.group(1) or literal.group(2)).upper()
            found = KEY_ARGS.get(command)
            if found is None:
                problems.append(f"line {line}: {command} has no entry in KEY_ARGS")
                continue
            spec = found
        keys = [] if spec == "none" else args[1:2] if spec == "first" else args[1:]
        for key in keys:
            if not _KEY_EXPR.match(key):
                problems.append(f"line {line}: key argument {key!r} is not from KEYS")
    for match in re.finditer(r"\bK(\.[A-Za-z_]\w*|\[[^\]]+\])\s*=[^=]", _strip_comments(source)):
        problems.append(f"K is changed ({match.group(0).strip()}): K must only hold KEYS")
    return problems


_GUARD = """\
local redis = (function(real)
  local allowed = {}
  for _, k in ipairs(KEYS) do allowed[k] = true end
  local spec = cjson.decode('%s')
  local function check(cmd, ...)
    local name = string.upper(cmd)
    local kind = spec[name]
    if kind == nil then
      error('lua key guard: command ' .. name .. ' has no entry in KEY_ARGS')
    end
    local args = {...}
    local last = 0
    if kind == 'first' then last = 1 elseif kind == 'all' then last = #args end
    for i = 1, last do
      if not allowed[args[i]] then
        error('lua key guard: ' .. name .. ' on a key not in KEYS: ' .. tostring(args[i]))
      end
    end
  end
  local shadow = {}
  for name, value in pairs(real) do shadow[name] = value end
  shadow.call = function(cmd, ...) check(cmd, ...) return real.call(cmd, ...) end
  shadow.pcall = function(cmd, ...) check(cmd, ...) return real.pcall(cmd, ...) end
  return shadow
end)(redis)
"""


def guarded(script: Script) -> Script:
    """``script`` with the key guard in front (a different SHA: loaded on first use)."""
    import orjson

    prelude = _GUARD % orjson.dumps(KEY_ARGS).decode()
    fields = {f.name: getattr(script, f.name) for f in dataclasses.fields(script) if f.init}
    fields["source"] = prelude + script.source
    return type(script)(**fields)
