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


def _bulk_command(
    queue: str,
    name: str | None,
    limit: int | None,
    yes: bool,
    json_out: bool,
    *,
    question: str,
    action: Callable[[Any, Callable[[int, int], None]], Awaitable[int]],
    what: str,
    done: str,
) -> None:
    """Check --name, confirm ``question`` (unless --yes), run ``action`` with a progress bar
    labelled ``what`` and report the count of jobs ``done`` (``retried``, ``cancelled``)."""
    if name is not None and not name:
        fail("--name must not be empty", EXIT_USAGE)
    if not yes:
        confirm(question)
    started = time.perf_counter()
    count = _bulk(queue, action, what, json_out)
    if json_out:
        emit_json({"queue": queue, done: count})
    else:
        out.print(f"{done} {count} job(s) of {queue!r} in {time.perf_counter() - started:.2f}s")


def retry_failed(
    queue: QueueArgument,
    name: NameOption = None,
    limit: LimitOption = None,
    yes: YesOption = False,
    json_out: JsonOption = False,
) -> None:
    """Move failed jobs (of one handler with --name, at most --limit) back to waiting with
    their attempts reset, oldest failures first, in batches of 500."""
    _bulk_command(
        queue, name, limit, yes, json_out,
        question=f"Retry {_scope(name, limit)}failed jobs of queue {queue!r}?",
        action=lambda q, p: q.retry_failed(name, limit, progress=p),
        what="retrying",
        done="retried",
    )  # fmt: skip


def cancel_waiting(
    queue: QueueArgument,
    name: NameOption = None,
    limit: LimitOption = None,
    yes: YesOption = False,
    json_out: JsonOption = False,
) -> None:
    """Cancel jobs that have not started: waiting and delayed ones (of one handler with
    --name, at most --limit), in batches of 500. Active jobs are left alone."""
    _bulk_command(
        queue, name, limit, yes, json_out,
        question=f"Cancel {_scope(name, limit)}waiting and delayed jobs of queue {queue!r}?",
        action=lambda q, p: q.cancel_waiting(name, limit, progress=p),
        what="cancelling",
        done="cancelled",
    )  # fmt: skip


def _scope(name: str | None, limit: int | None) -> str:
    words = f"up to {limit} " if limit is not None else "every "
    return words + (f"{name!r} " if name else "")


def add_commands(group: typer.Typer) -> None:
    """Add ``retry-failed`` and ``cancel-waiting`` to ``group``."""
    group.command("retry-failed")(retry_failed)
    group.command("cancel-waiting")(cancel_waiting)
