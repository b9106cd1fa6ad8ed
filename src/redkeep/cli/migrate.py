"""``redkeep migrate --from SOURCE --to TARGET``: copy caches and jobs between backends.

SOURCE and TARGET forms are listed in :mod:`redkeep.migrate.endpoints` and docs/migration.md.
Exit codes: 0 complete and verified; 1 error; 2 bad usage; 4 aborted on a bad snapshot line
(nothing written); 5 finished with skipped lines or counts that do not verify; 130 interrupted
(run the same command again to resume: nothing is copied twice).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import typer
from rich.progress import SpinnerColumn, TextColumn
from rich.table import Table

from redkeep.cli.exits import ExitCode
from redkeep.cli.ops import (
    EXIT_INCOMPLETE,
    EXIT_REFUSED,
    EXIT_USAGE,
    JsonOption,
    emit_json,
    err,
    fail,
    load_settings,
    out,
    progress_bar,
)
from redkeep.errors import ConfigError, RedkeepError

__all__ = ["migrate", "register"]


def _row(label: str, t: object) -> list[str]:
    target = getattr(t, "target", None)
    return [
        label,
        str(getattr(t, "source", 0)),
        str(getattr(t, "copied", 0)),
        str(getattr(t, "existed", 0)),
        str(getattr(t, "expired", 0)),
        "-" if target is None else str(target),
    ]


def _summary(report: object) -> Table:
    from redkeep.migrate.runner import MigrationReport

    assert isinstance(report, MigrationReport)
    title = "dry run (nothing written)" if report.dry_run else "migration summary"
    table = Table(
        "cache / queue:status", "source", "copied", "existed", "expired", "in target", title=title
    )
    for name, tally in sorted(report.caches.items()):
        table.add_row(*_row(f"cache {name}", tally))
    for queue, statuses in sorted(report.queues.items()):
        for status, tally in sorted(statuses.items()):
            table.add_row(*_row(f"queue {queue}:{status}", tally))
    table.add_section()
    table.add_row(
        "total",
        str(report.records),
        str(report.copied),
        str(report.existed),
        str(report.expired),
        "",
    )
    return table


def migrate(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="Redis URL, upstash://, http(s):// service, 'settings' or a snapshot file.",
        ),
    ],
    target: Annotated[
        str,
        typer.Option("--to", help="Redis URL, upstash://, 'settings' or a snapshot file to write."),
    ],
    from_prefix: Annotated[
        str | None, typer.Option(help="Key prefix at the source (default: REDKEEP_KEY_PREFIX).")
    ] = None,
    to_prefix: Annotated[
        str | None, typer.Option(help="Key prefix at the target (default: REDKEEP_KEY_PREFIX).")
    ] = None,
    from_token: Annotated[
        str | None,
        typer.Option(
            envvar="REDKEEP_MIGRATE_FROM_TOKEN",
            help="Upstash token or service API token of the source.",
            show_default=False,
        ),
    ] = None,
    to_token: Annotated[
        str | None,
        typer.Option(
            envvar="REDKEEP_MIGRATE_TO_TOKEN",
            help="Upstash token of the target.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Read everything and report what would be copied; write nothing."
        ),
    ] = False,
    on_error: Annotated[
        str,
        typer.Option(
            help="A bad snapshot line: 'abort' (before anything is written) or 'skip' it."
        ),
    ] = "abort",
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Records per write batch.")
    ] = 200,
    json_out: JsonOption = False,
) -> None:
    """Copy caches and jobs from SOURCE to TARGET; run it again to resume.

    Cache entries keep their remaining TTL; jobs keep status, attempts, priority and run_at.
    Idempotent: entries and jobs already in the target are left alone and counted as existed.
    """
    from redkeep.migrate import migrate as run_migration
    from redkeep.migrate import open_source, open_target, parse_endpoint
    from redkeep.migrate.runner import MigrationAborted

    if on_error not in ("abort", "skip"):
        fail(f"--on-error must be 'abort' or 'skip', got {on_error!r}", EXIT_USAGE)
    mode: Literal["abort", "skip"] = "abort" if on_error == "abort" else "skip"
    settings = load_settings()
    try:
        src = parse_endpoint(
            source, token=from_token, key_prefix=from_prefix, option="--from", settings=settings
        )
        dst = parse_endpoint(
            target, token=to_token, key_prefix=to_prefix, option="--to", settings=settings
        )
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    if src == dst:
        fail("--from and --to are the same place (use a different URL or prefix)", EXIT_USAGE)

    columns = (SpinnerColumn(), TextColumn("[progress.description]{task.description}"))

    async def body() -> object:
        source_obj = open_source(src, settings)
        target_obj = open_target(dst, settings)
        try:
            with progress_bar("copying", json_out, *columns) as advance:
                return await run_migration(
                    source_obj,
                    target_obj,
                    dry_run=dry_run,
                    on_error=mode,
                    batch_size=batch_size,
                    progress=advance,
                )
        finally:
            await source_obj.close()
            await target_obj.close()

    if not json_out:
        err.print(f"from {src.display}\nto   {dst.display}" + ("  [dry run]" if dry_run else ""))
    try:
        report = asyncio.run(body())
    except MigrationAborted as exc:
        if json_out:
            emit_json(
                {
                    "aborted": True,
                    "applied": exc.applied,
                    "errors": [
                        {"line": e.line, "where": e.where, "reason": e.reason} for e in exc.errors
                    ],
                }
            )
        for e in exc.errors[:20]:
            err.print(f"  {e}", markup=False)
        fail(f"{exc} (use --on-error skip to copy the valid records)", EXIT_REFUSED)
    except KeyboardInterrupt:
        fail(
            "interrupted: run the same command again to resume (nothing is copied twice)",
            ExitCode.INTERRUPTED,
        )
    except RedkeepError as exc:
        fail(f"{type(exc).__name__}: {exc}")
    from redkeep.migrate.runner import MigrationReport

    assert isinstance(report, MigrationReport)
    if json_out:
        emit_json(report.as_dict())
    else:
        out.print(_summary(report))
        for e in report.skipped[:50]:
            err.print(f"skipped {e}", markup=False)
    if report.skipped:
        fail(f"{len(report.skipped)} bad line(s) skipped", EXIT_INCOMPLETE)
    if not report.verified:
        fail("the target holds fewer entries than were copied (see 'in target')", EXIT_INCOMPLETE)


def register(app: typer.Typer) -> None:
    """Add ``redkeep migrate`` to the CLI."""
    app.command("migrate")(migrate)
