"""``redkeep queues retry-failed|cancel-waiting``: bulk operations on a queue in Redis (see
:mod:`redkeep.queue.bulk`), with a progress bar on a terminal.

:func:`add_commands` adds them to the ``queues`` group of :mod:`redkeep.cli.queues`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.progress import TextColumn

from redkeep.cli.ops import (
    EXIT_USAGE,
    JsonOption,
    QueueArgument,
    YesOption,
    confirm,
    emit_json,
    fail,
    on_queue,
    out,
    progress_bar,
)

__all__ = ["add_commands"]

NameOption = Annotated[str | None, typer.Option("--name", "-n", help="Only jobs of this handler.")]
LimitOption = Annotated[int | None, typer.Option("--limit", min=1, help="At most this many jobs.")]


def _bulk(
    queue: str,
    action: Callable[[Any, Callable[[int, int], None]], Awaitable[int]],
    what: str,
    json_out: bool,
) -> int:
    """Run ``action(queue, progress)`` with a progress bar (on a terminal, not with --json)."""

    async def body(q: Any) -> int:
        with progress_bar(what, json_out, TextColumn(what)) as advance:
            return await action(q, advance)

    return on_queue(queue, body)


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
