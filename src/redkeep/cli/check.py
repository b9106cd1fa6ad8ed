"""``redkeep check``: show the effective settings and test the connection to the backend.

Prints every setting (secrets as ``***``) and, for a Redis or Upstash backend, connects,
pings and reports the server version and the round-trip latency. Exit code 0 when the backend
answers (or is the in-process memory backend), 1 with a one-line error when it does not, 2 when
the settings are invalid (:mod:`redkeep.cli.exits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.table import Table

from redkeep.cli.exits import ExitCode
from redkeep.config import Settings, redact_url
from redkeep.errors import ConfigError, scrub

__all__ = ["check", "probe", "register"]

EXIT_OK = ExitCode.OK
EXIT_FAILED = ExitCode.ERROR
PINGS = 5

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _env_name(field: str) -> str:
    return f"REDKEEP_{field.upper()}"


def _target(settings: Settings) -> str:
    """Where the backend lives, safe to print."""
    if settings.effective_backend == "redis":
        return settings.redis_url_redacted or "-"
    if settings.effective_backend == "upstash":
        return redact_url(settings.upstash_url) or "-"
    return "in-process memory"


async def probe(settings: Settings, pings: int = PINGS) -> dict[str, Any]:
    """Connect to the configured backend, ping it and read its version.

    Returns ``{"transport", "server_version", "latency_ms"}`` (latency is the median of
    ``pings`` PINGs). Raises :mod:`redkeep.errors` exceptions when the backend fails.
    """
    from redkeep.redis.factory import create_client

    client = create_client(settings)
    if client is None:
        raise ConfigError("the memory backend has nothing to connect to")
    try:
        rtts = [await client.ping() for _ in range(max(1, pings))]
        try:
            info = await client.info("server")
            version = str(info.get("redis_version") or info.get("version") or "unknown")
        except Exception:  # some REST servers do not implement INFO; the ping proved the link
            version = "unknown"
        return {
            "transport": client.transport,
            "server_version": version,
            "latency_ms": round(statistics.median(rtts) * 1000, 3),
        }
    finally:
        # Closing a broken client must not hide the real error.
        with contextlib.suppress(Exception):
            await client.close()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no details"
    return scrub(f"{type(exc).__name__}: {text}")


def _print_settings(settings: Settings) -> None:
    table = Table("variable", "value", title="redkeep settings (secrets shown as ***)")
    for field, value in settings.redacted().items():
        table.add_row(_env_name(field), "-" if value is None else str(value))
    _out.print(table)


def check(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of tables.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="Seconds to wait for the whole check (default: connect + 3 command timeouts).",
        ),
    ] = None,
) -> None:
    """Show the effective settings; for Redis or Upstash, connect, ping and show the server."""
    try:
        settings = Settings()
    except ConfigError as exc:
        detail = "; ".join(f"{k}: {v}" for k, v in exc.problems.items()) or str(exc)
        _fail(f"invalid redkeep settings: {detail}", json_out, code=ExitCode.USAGE)

    backend = settings.effective_backend
    report: dict[str, Any] = {
        "ok": True,
        "backend": backend,
        "target": _target(settings),
        "connection": None,
        "settings": settings.redacted(),
    }
    if not json_out:
        _print_settings(settings)
    if backend == "memory":
        if json_out:
            _emit(report)
        else:
            _out.print("backend: memory (in-process; nothing to connect to) - ok")
        return

    limit = timeout or settings.connect_timeout + 3 * settings.command_timeout
    try:
        report["connection"] = asyncio.run(asyncio.wait_for(probe(settings), limit))
    except KeyboardInterrupt:
        _fail("interrupted", json_out, code=ExitCode.INTERRUPTED)
    except TimeoutError:
        report.update(ok=False, error=f"no answer within {limit:g}s")
    except Exception as exc:
        report.update(ok=False, error=_one_line(exc))
    if not report["ok"]:
        message = f"cannot reach {backend} at {report['target']}: {report['error']}"
        if json_out:
            report["error"] = scrub(message)
            _emit(report)
            raise typer.Exit(EXIT_FAILED)
        _fail(message, json_out)
    if json_out:
        _emit(report)
        return
    conn = report["connection"]
    _out.print(
        f"backend: {backend} at {report['target']} - ok: {conn['transport']} transport, "
        f"server {conn['server_version']}, round trip {conn['latency_ms']:.2f} ms"
    )


def _emit(report: dict[str, Any]) -> None:
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2, default=str).decode()
    sys.stdout.write(scrub(text) + "\n")
    sys.stdout.flush()


def _fail(message: str, json_out: bool, code: int = EXIT_FAILED) -> NoReturn:
    line = scrub(" ".join(message.split()))
    if json_out:
        _emit({"ok": False, "error": line})
    else:
        _err.print(f"error: {line}", markup=False)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``redkeep check`` to the CLI."""
    app.command("check")(check)
