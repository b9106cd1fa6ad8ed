"""Operations commands: ``redkeep queues`` (the listing; the group is :mod:`redkeep.cli.queues`)
and ``redkeep config``, and the helpers shared by the commands that act on Redis (``jobs``,
``schedules``, ``queues``, ``events``, ``cache``, ``migrate``).

Every command prints a rich table by default and JSON with ``--json``. Exit codes are the one
table of :mod:`redkeep.cli.exits`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from redkeep.cli.exits import ExitCode
from redkeep.config import Settings
from redkeep.errors import ConfigError, InvalidJob, RedkeepError, scrub
from redkeep.names import is_valid_name
from redkeep.queue.job import STATUSES
from redkeep.redis.base import RedisClient

if TYPE_CHECKING:
    from rich.progress import ProgressColumn

    from redkeep.queue.redis import RedisJobQueue

__all__ = [
    "EXIT_ERROR",
    "EXIT_INCOMPLETE",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "JsonOption",
    "QueueArgument",
    "QueueOption",
    "YesOption",
    "backend_client",
    "config",
    "confirm",
    "emit_json",
    "fail",
    "load_settings",
    "on_backend",
    "on_queue",
    "open_queue",
    "progress_bar",
    "queues",
    "register",
    "run",
    "utc_time",
]

EXIT_OK = ExitCode.OK
EXIT_ERROR = ExitCode.ERROR
EXIT_USAGE = ExitCode.USAGE
EXIT_NOT_FOUND = ExitCode.NOT_FOUND
EXIT_REFUSED = ExitCode.REFUSED
EXIT_INCOMPLETE = ExitCode.INCOMPLETE

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
QueueOption = Annotated[str, typer.Option("--queue", "-q", help="Queue name.")]
QueueArgument = Annotated[str, typer.Argument(help="Queue name.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]

T = TypeVar("T")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print a one-line error (secrets scrubbed) to stderr and exit with ``code``."""
    err.print(f"[red]error:[/red] {scrub(message)}", markup=True)
    raise typer.Exit(code)


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (no colours, for scripts)."""
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
    sys.stdout.flush()


def load_settings() -> Settings:
    """Settings from the environment; invalid settings exit 2 naming every bad variable."""
    try:
        return Settings()
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


def confirm(question: str) -> None:
    """Ask ``question``; exit 4 unless the answer is yes (also when nobody can answer)."""
    try:
        agreed = typer.confirm(question)
    except typer.Abort:  # no terminal or end of input: nobody said yes
        agreed = False
    if not agreed:
        fail("not confirmed (use --yes in scripts)", EXIT_REFUSED)


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run an async command body; redkeep errors become a one-line message and exit 1."""
    try:
        return asyncio.run(_guarded(main))
    except KeyboardInterrupt:
        fail("interrupted", ExitCode.INTERRUPTED)


async def _guarded(main: Callable[[], Awaitable[T]]) -> T:
    try:
        return await main()
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except RedkeepError as exc:
        fail(f"{type(exc).__name__}: {exc}")


@contextlib.asynccontextmanager
async def backend_client(settings: Settings) -> AsyncIterator[RedisClient]:
    """The configured Redis/Upstash client, closed afterwards; the memory backend exits 2.

    Memory backends live inside the process that uses them, so a separate command cannot see
    them: it needs ``REDKEEP_REDIS_URL`` (or Upstash credentials) of the service to inspect.
    """
    from redkeep.redis.factory import create_client

    client = create_client(settings)
    if client is None:
        fail(
            "no Redis configured (REDKEEP_BACKEND resolves to memory): set REDKEEP_REDIS_URL or "
            "Upstash credentials to the backend of the service you want to inspect",
            EXIT_USAGE,
        )
    try:
        yield client
    finally:
        await client.close()


def on_backend(action: Callable[[RedisClient, Settings], Awaitable[T]]) -> T:
    """Run ``action(client, settings)`` with :func:`backend_client` under :func:`run`: the
    body of a command that acts on Redis."""
    settings = load_settings()

    async def body() -> T:
        async with backend_client(settings) as client:
            return await action(client, settings)

    return run(body)


def open_queue(client: RedisClient, name: str, settings: Settings) -> RedisJobQueue:
    """Queue ``name`` on ``client``; a bad name exits with the usage code."""
    from redkeep.queue.redis import RedisJobQueue

    try:
        return RedisJobQueue(client, name, key_prefix=settings.key_prefix)
    except InvalidJob as exc:
        fail(str(exc), EXIT_USAGE)


def on_queue(name: str, action: Callable[[RedisJobQueue], Awaitable[T]]) -> T:
    """:func:`on_backend` for ``action(queue)`` on queue ``name``."""
    return on_backend(lambda client, settings: action(open_queue(client, name, settings)))


@contextlib.contextmanager
def progress_bar(
    what: str, json_out: bool, *columns: ProgressColumn
) -> Iterator[Callable[[int, int | None], None]]:
    """A transient bar on stderr (``columns``, then bar, done/total and elapsed time), shown
    only on a terminal and not with --json; yields ``advance(done, total)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        *columns,
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=json_out or not err.is_terminal,
    )
    task = bar.add_task(what, total=None)

    def advance(done: int, total: int | None) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield advance


def utc_time(ts: float | None) -> str:
    """``ts`` (seconds since the epoch) as ``YYYY-MM-DD HH:MM:SS`` in UTC; ``-`` for None."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def queues(
    json_out: JsonOption = False,
    name: Annotated[
        list[str] | None, typer.Option("--queue", "-q", help="Only this queue (repeatable).")
    ] = None,
) -> None:
    """Job counts per status and the age of the oldest waiting job, for every queue."""
    settings = load_settings()

    async def body() -> list[dict[str, Any]]:
        from redkeep.monitoring.probes import queue_depth
        from redkeep.queue.redis import RedisJobQueue, list_queue_names

        rows: list[dict[str, Any]] = []
        async with backend_client(settings) as client:
            names = name or await list_queue_names(client, settings.key_prefix)
            for qname in names:
                if not is_valid_name(qname):  # registered before the one naming rule
                    err.print(f"skipping queue {qname!r}: not a valid queue name", markup=False)
                    continue
                queue = RedisJobQueue(client, qname, key_prefix=settings.key_prefix)
                counts, age = await queue_depth(queue)
                paused = await queue.is_paused()
                rows.append(
                    {"queue": qname, "counts": counts, "oldest_waiting_seconds": age,
                     "paused": paused}
                )  # fmt: skip
        return rows

    rows = run(body)
    if json_out:
        emit_json({"key_prefix": settings.key_prefix, "queues": rows})
        return
    if not rows:
        out.print(f"no queues under key prefix {settings.key_prefix!r}")
        return
    statuses = list(STATUSES)  # what Redis holds (no enqueue outbox here)
    if not any(row["counts"].get("blocked") for row in rows):
        statuses.remove("blocked")  # only queues with flows have blocked jobs: keep it narrow
    table = Table("queue", *statuses, "oldest waiting", title=f"queues ({settings.key_prefix})")
    for row in rows:
        c = row["counts"]
        table.add_row(
            row["queue"],
            *(str(c.get(s, 0)) for s in statuses),
            _age(row["oldest_waiting_seconds"]),
        )
    out.print(table)
    paused = [row["queue"] for row in rows if row["paused"]]
    if paused:
        out.print(f"paused (no jobs claimed): {', '.join(paused)}")


def config(json_out: JsonOption = False) -> None:
    """The effective settings (environment, .env and defaults), secrets shown as ***."""
    settings = load_settings()
    values = settings.redacted()
    explicit = settings.model_fields_set
    if json_out:
        emit_json(values)
        return
    from redkeep.docs_gen import env_names

    table = Table("variable", "value", "from", title="redkeep settings")
    for field, value in values.items():
        env = env_names(field, Settings.model_fields[field])[0]
        shown = "-" if value is None else str(value)
        table.add_row(env, shown, "set" if field in explicit else "default")
    out.print(table)
    out.print(f"effective backend: {settings.effective_backend}")


def register(app: typer.Typer) -> None:
    """Add ``redkeep config`` to the CLI (``redkeep queues``: :mod:`redkeep.cli.queues`)."""
    app.command("config")(config)
