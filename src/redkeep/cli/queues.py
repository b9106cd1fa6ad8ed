"""``redkeep queues [pause|resume|retry-failed|cancel-waiting|rate-limit|group-limit]``: list
queues (no sub-command: :func:`redkeep.cli.ops.queues`) and act on whole queues in Redis."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from redkeep.cli import ops, queue_limits
from redkeep.cli.ops import JsonOption, QueueArgument, emit_json, on_queue, out
from redkeep.cli.queue_bulk import add_commands

if TYPE_CHECKING:
    from redkeep.queue.redis import RedisJobQueue

__all__ = ["app", "register"]

app = typer.Typer(
    help="Queues: job counts per status (no sub-command), pause, resume, retry-failed, "
    "cancel-waiting, rate-limit, group-limit.",
    invoke_without_command=True,
)


def _set_paused(queue: str, paused: bool, json_out: bool) -> None:
    async def body(q: RedisJobQueue) -> bool:
        await (q.pause() if paused else q.resume())
        return bool(await q.is_paused())

    now = on_queue(queue, body)
    if json_out:
        emit_json({"queue": queue, "paused": now})
    else:
        out.print(f"queue {queue!r} {'paused' if now else 'resumed'}")


@app.callback()
def listing(
    ctx: typer.Context,
    json_out: JsonOption = False,
    name: Annotated[
        list[str] | None, typer.Option("--queue", "-q", help="Only this queue (repeatable).")
    ] = None,
) -> None:
    """Job counts per status, paused state and the age of the oldest waiting job, for every
    queue (without a sub-command)."""
    if ctx.invoked_subcommand is None:
        ops.queues(json_out, name)


@app.command("pause")
def pause(queue: QueueArgument, json_out: JsonOption = False) -> None:
    """Pause a queue: no worker claims its jobs until it is resumed (running jobs finish,
    enqueues still work)."""
    _set_paused(queue, True, json_out)


@app.command("resume")
def resume(queue: QueueArgument, json_out: JsonOption = False) -> None:
    """Resume a paused queue: idle workers claim its jobs at once."""
    _set_paused(queue, False, json_out)


add_commands(app)  # retry-failed, cancel-waiting (redkeep.cli.queue_bulk)
queue_limits.add_commands(app)  # rate-limit, group-limit


def register(root: typer.Typer) -> None:
    """Add ``redkeep queues ...`` to the CLI."""
    root.add_typer(app, name="queues")
