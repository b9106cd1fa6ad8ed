"""``redkeep health URL``: check a running service; the exit code says whether it is ready.

0 when ready (or live with ``--live``), 1 when not or when the service does not answer (the
line printed says which), 2 for a bad URL: usable as a Docker ``HEALTHCHECK``, which reserves
exit code 2.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import typer

from redkeep.cli.exits import ExitCode
from redkeep.config import redact_url
from redkeep.errors import scrub

__all__ = ["health", "register"]


def _target(url: str, live: bool) -> str:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(f"expected an http(s) URL of the service, got {redact_url(url)!r}")
    path = parts.path.rstrip("/")
    if not path.startswith("/health/"):
        path = f"{path}/health/{'live' if live else 'ready'}"
    return parts._replace(path=path, query="", fragment="").geturl()


def health(
    url: Annotated[str, typer.Argument(help="Service base URL, e.g. http://127.0.0.1:8000.")] = (
        "http://127.0.0.1:8000"
    ),
    live: Annotated[
        bool, typer.Option("--live", help="Check liveness instead of readiness.")
    ] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the answer.")] = 5.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the service's JSON report.")
    ] = False,
) -> None:
    """Check a running service: exit 0 when ready (or live), 1 when not ready or unreachable."""
    target = _target(url, live)
    shown = redact_url(target) or target
    try:
        response = httpx.get(target, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        typer.echo(f"unreachable: {shown}: {scrub(str(exc)) or type(exc).__name__}", err=True)
        raise typer.Exit(ExitCode.ERROR) from None
    try:
        report: Any = response.json()
    except ValueError:
        report = None
    ok = response.status_code == 200
    if as_json:
        typer.echo(json.dumps(report if report is not None else {"status": response.status_code}))
    else:
        status = report.get("status") if isinstance(report, dict) else None
        typer.echo(
            f"{'ok' if ok else 'NOT READY'}: {shown} -> {response.status_code}"
            + (f" ({status})" if status else "")
        )
        reason = report.get("reason") if isinstance(report, dict) else None
        if reason:
            typer.echo(f"reason: {scrub(str(reason))}")
    raise typer.Exit(ExitCode.OK if ok else ExitCode.ERROR)


def register(app: typer.Typer) -> None:
    """Add ``redkeep health`` to the CLI."""
    app.command("health")(health)
