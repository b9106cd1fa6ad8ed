"""``redkeep queues retry-failed|cancel-waiting``: bulk operations on a queue in Redis (see
:mod:`redkeep.queue.bulk`), with a progress bar on a terminal.

:func:`add_commands` adds them to the ``queues`` group of :mod:`redkeep.cli.queues`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from redkeep.cli.ops import (
    EXIT_USAGE,
    JsonOption,
    backend_client,
    confirm,
    emit_json,
    err,
    fail,
    load_settings,
    out,
    run,
)
from redkeep.errors import InvalidJob

__all__ = ["add_commands"]

QueueArgument = Annotated[str, typer.Argument(help="Queue name.")]
NameOption = Annotated[str | None, typer.Option("--name", "-n", help="Only jobs of this handler.")]
LimitOption = Annotated[int | None, typer.Option("--limit", min=1, help="At most this many jobs.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def _bulk(
    queue: str,
    action: Callable[[Any, Callable[[int, int], None]], Awaitable[int]],
    what: str,
    json_out: bool,
) -> int:
    """Run ``action(queue, progress)`` with a progress bar (on a terminal, not with --json)."""
    from redkeep.queue.redis import RedisJobQueue

    settings = load_settings()
    bar = Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=json_out or not err.is_terminal,
    )

    async def body() -> int:
        async with backend_client(settings) as client:
            try:
                q = RedisJobQueue(client, queue, key_prefix=settings.key_prefix)
            except InvalidJob as exc:
                fail(str(exc), EXIT_USAGE)
            task = bar.add_task(what, total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            with bar:
                return await action(q, advance)

    return run(body)


def retry_failed(
    queue: QueueArgument,
    name: NameOption = None,
    limit: LimitOption = None,
    yes: YesOption = False,
    json_out: JsonOption = False,
) -> None:
    """Move failed jobs (of one handler with --name, at most --limit) back to waiting with
    their attempts reset, oldest failures first, in batches of 500."""
    if name is not None and not name:
        fail("--name must not be empty", EXIT_USAGE)
    if not yes:
        confirm(f"Retry {_scope(name, limit)}failed jobs of queue {queue!r}?")
    started = time.perf_counter()
    count = _bulk(queue, lambda q, p: q.retry_failed(name, limit, progress=p), "retrying", json_out)
    if json_out:
        emit_json({"queue": queue, "retried": count})
    else:
        out.print(f"retried {count} job(s) of {queue!r} in {time.perf_counter() - started:.2f}s")


def cancel_waiting(
    queue: QueueArgument,
    name: NameOption = None,
    limit: LimitOption = None,
    yes: YesOption = False,
    json_out: JsonOption = False,
) -> None:
    """Cancel jobs that have not started: waiting and delayed ones (of one handler with
    --name, at most --limit), in batches of 500. Active jobs are left alone."""
    if name is not None and not name:
        fail("--name must not be empty", EXIT_USAGE)
    if not yes:
        confirm(f"Cancel {_scope(name, limit)}waiting and delayed jobs of queue {queue!r}?")
    started = time.perf_counter()
    count = _bulk(
        queue, lambda q, p: q.cancel_waiting(name, limit, progress=p), "cancelling", json_out
    )
    if json_out:
        emit_json({"queue": queue, "cancelled": count})
    else:
        out.print(f"cancelled {count} job(s) of {queue!r} in {time.perf_counter() - started:.2f}s")


def _scope(name: str | None, limit: int | None) -> str:
    words = f"up to {limit} " if limit is not None else "every "
    return words + (f"{name!r} " if name else "")


def add_commands(group: typer.Typer) -> None:
    """Add ``retry-failed`` and ``cancel-waiting`` to ``group``."""
    group.command("retry-failed")(retry_failed)
    group.command("cancel-waiting")(cancel_waiting)
