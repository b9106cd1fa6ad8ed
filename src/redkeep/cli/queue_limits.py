"""``redkeep queues rate-limit|group-limit QUEUE``: show, set or clear a queue's rate limit and
group limit (see docs/queue.md, "Rate limit" and "Groups")."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from redkeep.cli.ops import EXIT_USAGE, JsonOption, QueueArgument, emit_json, fail, on_queue, out
from redkeep.errors import InvalidJob, InvalidName

__all__ = ["add_commands"]

ClearOption = Annotated[bool, typer.Option("--clear", help="Remove the limit.")]


def _apply(queue: str, change: Any) -> Any:
    """Run ``change(q)`` on queue ``queue`` in Redis; bad input exits with the usage code."""

    async def body(q: Any) -> Any:
        try:
            return await change(q)
        except (InvalidJob, InvalidName) as exc:  # bad limits
            fail(str(exc), EXIT_USAGE)

    return on_queue(queue, body)


def rate_limit(
    queue: QueueArgument,
    max_jobs: Annotated[int | None, typer.Argument(help="Most job starts per window.")] = None,
    per_seconds: Annotated[float | None, typer.Argument(help="The window (seconds).")] = None,
    clear: ClearOption = False,
    json_out: JsonOption = False,
) -> None:
    """Show the queue's rate limit; with MAX_JOBS PER_SECONDS set it (at most MAX_JOBS jobs
    start in any window of PER_SECONDS, across every worker); --clear removes it."""

    async def change(q: Any) -> Any:
        if clear:
            return await q.set_rate_limit(None)
        if max_jobs is not None or per_seconds is not None:
            return await q.set_rate_limit(max_jobs, per_seconds)
        return await q.get_rate_limit()

    limit = _apply(queue, change)
    view = None if limit is None else {"max_jobs": limit.max_jobs, "per_seconds": limit.per_seconds}
    if json_out:
        emit_json({"queue": queue, "rate_limit": view})
    elif view is None:
        out.print(f"queue {queue!r}: no rate limit")
    else:
        out.print(f"queue {queue!r}: at most {limit.max_jobs} job starts per "
                  f"{limit.per_seconds:g} s")  # fmt: skip


def group_limit(
    queue: QueueArgument,
    concurrency: Annotated[int | None, typer.Option(help="Most active jobs of one group.")] = None,
    max_jobs: Annotated[
        int | None, typer.Option(help="Most starts of one group per window.")
    ] = None,
    per_seconds: Annotated[float | None, typer.Option(help="The window of --max-jobs.")] = None,
    clear: ClearOption = False,
    json_out: JsonOption = False,
) -> None:
    """Show the limit every group of the queue gets; with --concurrency and/or --max-jobs
    --per-seconds set it (replacing the previous one); --clear removes it."""
    changing = concurrency is not None or max_jobs is not None or per_seconds is not None

    async def change(q: Any) -> Any:
        if clear:
            return await q.set_group_limit()
        if changing:
            return await q.set_group_limit(concurrency, max_jobs, per_seconds)
        return await q.get_group_limit()

    limit = _apply(queue, change)
    view = None
    if limit is not None:
        r = limit.rate
        view = {"concurrency": limit.concurrency, "max_jobs": r.max_jobs if r else None,
                "per_seconds": r.per_seconds if r else None}  # fmt: skip
    if json_out:
        emit_json({"queue": queue, "group_limit": view})
    elif limit is None:
        out.print(f"queue {queue!r}: no group limit (groups are served round-robin)")
    else:
        parts = []
        if limit.concurrency is not None:
            parts.append(f"at most {limit.concurrency} active jobs")
        if limit.rate is not None:
            parts.append(f"at most {limit.rate.max_jobs} starts per {limit.rate.per_seconds:g} s")
        out.print(f"queue {queue!r}: every group {' and '.join(parts)}")


def add_commands(app: typer.Typer) -> None:
    """Add ``rate-limit`` and ``group-limit`` to ``redkeep queues``."""
    app.command("rate-limit")(rate_limit)
    app.command("group-limit")(group_limit)
