"""``redkeep cache get|set|delete|clear|stats NAME``: read and change a cache in Redis.

Values are shown and accepted as JSON in the serializer's form: plain JSON for JSON types,
tagged objects (``{"__rk__": "dt", "v": "2024-01-01T00:00:00"}``) for datetimes, bytes, sets...
The commands talk to Redis directly (no memory fallback), so an outage is reported, not hidden.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.table import Table

from redkeep.cli.ops import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    JsonOption,
    YesOption,
    confirm,
    emit_json,
    fail,
    on_backend,
    out,
)
from redkeep.config import Settings
from redkeep.errors import RedkeepError, SerializationError

__all__ = ["app", "register"]

app = typer.Typer(help="Read and change a cache: get, set, delete, clear, stats.")

NameArg = Annotated[str, typer.Argument(help="Cache name, e.g. sessions.")]
KeyArg = Annotated[str, typer.Argument(help="Cache key.")]
_MISSING = object()
_PAGE = 500
T = TypeVar("T")


def _cache(client: Any, name: str, settings: Settings) -> Any:
    from redkeep.cache.redis import RedisCache
    from redkeep.serialization import JsonSerializer

    try:
        return RedisCache(
            client,
            name,
            key_prefix=settings.key_prefix,
            max_key_length=settings.cache_max_key_length,
            serializer=JsonSerializer.from_settings(settings),
        )
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


def _on_cache(name: str, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(cache)`` on cache ``name`` in Redis (see :func:`on_backend`)."""
    return on_backend(lambda client, settings: action(_cache(client, name, settings)))


def _as_json(value: Any) -> Any:
    from redkeep.serialization import dumps

    return orjson.loads(dumps(value))


@app.command("get")
def get(name: NameArg, key: KeyArg, json_out: JsonOption = False) -> None:
    """Print the value at KEY (exit 3 when absent) and its remaining TTL."""

    async def body(cache: Any) -> tuple[Any, float | None]:
        value = await cache.get(key, _MISSING)
        ttl = await cache.ttl(key) if value is not _MISSING else None
        return value, ttl

    value, ttl = _on_cache(name, body)
    if value is _MISSING:
        if json_out:
            emit_json({"cache": name, "key": key, "found": False})
        fail(f"no key {key!r} in cache {name!r}", EXIT_NOT_FOUND)
    if json_out:
        emit_json({"cache": name, "key": key, "found": True, "value": _as_json(value), "ttl": ttl})
        return
    out.print(orjson.dumps(_as_json(value), option=orjson.OPT_INDENT_2).decode(), markup=False)
    out.print(f"[dim]ttl: {'none' if ttl is None else f'{ttl:.3f}s'}[/dim]")


@app.command("set")
def set_(
    name: NameArg,
    key: KeyArg,
    value: Annotated[str, typer.Argument(help="JSON value (or any text with --string).")],
    ttl: Annotated[float | None, typer.Option(help="Seconds to live (default: none).")] = None,
    string: Annotated[bool, typer.Option("--string", help="Store VALUE as a string.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Store VALUE at KEY, parsed as JSON unless --string."""
    from redkeep.serialization import loads

    if ttl is not None and not ttl > 0:
        fail(f"--ttl must be positive, got {ttl}", EXIT_USAGE)
    if string:
        parsed: Any = value
    else:
        try:
            parsed = loads(value)
        except SerializationError as exc:
            fail(f"VALUE is not valid JSON ({exc}); pass --string to store it as text", EXIT_USAGE)
    _on_cache(name, lambda cache: cache.set(key, parsed, ttl=ttl))
    if json_out:
        emit_json({"cache": name, "key": key, "stored": True, "ttl": ttl})
    else:
        out.print(f"stored {key!r} in {name!r}" + (f" for {ttl:g}s" if ttl else ""))


@app.command("delete")
def delete(name: NameArg, key: KeyArg, json_out: JsonOption = False) -> None:
    """Remove KEY (exit 3 when it did not exist)."""
    existed = bool(_on_cache(name, lambda cache: cache.delete(key)))
    if json_out:
        emit_json({"cache": name, "key": key, "deleted": existed})
    elif existed:
        out.print(f"deleted {key!r} from {name!r}")
    if not existed:
        fail(f"no key {key!r} in cache {name!r}", EXIT_NOT_FOUND)


@app.command("clear")
def clear(
    name: NameArg,
    yes: YesOption = False,
    json_out: JsonOption = False,
) -> None:
    """Remove every key of cache NAME (this cache's namespace only)."""
    if not yes:
        confirm(f"Remove every key of cache {name!r}?")
    removed = int(_on_cache(name, lambda cache: cache.clear()))
    if json_out:
        emit_json({"cache": name, "removed": removed})
    else:
        out.print(f"removed {removed} key(s) from {name!r}")


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


async def _stats(cache: Any) -> dict[str, Any]:
    client = cache.client
    entries = with_ttl = size = 0
    min_ttl: float | None = None
    batch: list[str] = []

    async def flush() -> None:
        nonlocal with_ttl, size, min_ttl
        replies = await client.pipeline([c for k in batch for c in (("PTTL", k), ("STRLEN", k))])
        for i in range(len(batch)):
            ms, length = replies[2 * i], replies[2 * i + 1]
            if isinstance(ms, RedkeepError) or isinstance(length, RedkeepError):
                continue
            size += int(length)
            if int(ms) >= 0:
                with_ttl += 1
                min_ttl = int(ms) / 1000 if min_ttl is None else min(min_ttl, int(ms) / 1000)
        batch.clear()

    async for full in client.scan_iter(_glob_escape(cache.namespace) + "*", _PAGE):
        entries += 1
        batch.append(full)
        if len(batch) >= _PAGE:
            await flush()
    if batch:
        await flush()
    return {
        "cache": cache.name,
        "namespace": cache.namespace,
        "entries": entries,
        "with_ttl": with_ttl,
        "without_ttl": entries - with_ttl,
        "value_bytes": size,
        "soonest_expiry_seconds": min_ttl,
    }


@app.command("stats")
def stats(name: NameArg, json_out: JsonOption = False) -> None:
    """Entries, entries with and without TTL, and value bytes of cache NAME (one SCAN).

    Hit/miss counters live in each process: read them from the service's /metrics or
    GET /v1/caches/NAME/stats.
    """
    data = _on_cache(name, _stats)
    if json_out:
        emit_json(data)
        return
    table = Table("stat", "value", title=f"cache {name!r}", show_header=False)
    for field, value in data.items():
        table.add_row(field, "-" if value is None else str(value))
    out.print(table)


def register(root: typer.Typer) -> None:
    """Add ``redkeep cache ...`` to the CLI."""
    root.add_typer(app, name="cache")
