"""The ``redkeep`` command line (Typer): ``redkeep --help`` lists the commands.

Each command group lives in its own module under ``redkeep.cli`` and defines
``register(app: typer.Typer) -> None``. To add one, append its module to ``COMMAND_MODULES``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer

from redkeep.cli.exits import ExitCode
from redkeep.errors import scrub

__all__ = ["COMMAND_MODULES", "app", "main"]

# One line per command module; each one's register(app) adds its commands.
COMMAND_MODULES: tuple[str, ...] = (
    "redkeep.cli.check",
    "redkeep.cli.serve",
    "redkeep.cli.worker",
    "redkeep.cli.health",
    "redkeep.cli.ops",
    "redkeep.cli.jobs",
    "redkeep.cli.queues",
    "redkeep.cli.workers",
    "redkeep.cli.schedules",
    "redkeep.cli.events",
    "redkeep.cli.cache",
    "redkeep.cli.migrate",
)

app = typer.Typer(
    name="redkeep",
    help="Durable cache and job-queue services on Redis, with a memory fallback.",
    no_args_is_help=True,
    add_completion=False,
    # Rich tracebacks print local variables, which may hold passwords and tokens.
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
)


def _show_version(value: bool) -> None:
    if value:
        from redkeep import __version__

        typer.echo(f"redkeep {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Durable cache and job-queue services on Redis, with a memory fallback.

    Settings come from REDKEEP_* environment variables (and .env); see `redkeep check`.
    """


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    """Entry point of the ``redkeep`` script and ``python -m redkeep``."""
    try:
        app()
    except Exception as exc:  # a bug: still one scrubbed line, never a secret-bearing traceback
        message = " ".join(str(exc).split())
        sys.stderr.write(scrub(f"error: unexpected {type(exc).__name__}: {message}") + "\n")
        sys.exit(ExitCode.ERROR)
