"""``redkeep events QUEUE [--follow]``: print a queue's job events (the stored ones, then new
ones as they happen with ``--follow``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from redkeep.cli.ops import EXIT_USAGE, QueueArgument, fail, on_queue, out
from redkeep.errors import InvalidJob
from redkeep.queue.events import JobEvent

if TYPE_CHECKING:
    from redkeep.queue.redis import RedisJobQueue

__all__ = ["events", "register"]


def _line(event: JobEvent, json_out: bool) -> str:
    if json_out:
        from redkeep.web.events import event_to_dict

        return orjson.dumps(event_to_dict(event)).decode()
    when = datetime.fromtimestamp(event.at, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    extra = " ".join(f"{k}={v}" for k, v in event.data.items())
    return f"{event.id}  {when}  {event.event:<9}  {event.job_id}  {extra}".rstrip()


def events(
    queue: QueueArgument,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="Start after this event id (default: the oldest kept).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Stored events to print.")] = 100,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print a queue's job events, oldest first; --follow waits for new ones (Ctrl-C ends)."""

    async def body(q: RedisJobQueue) -> None:
        try:
            stored = await q.read_events(since, limit)
        except InvalidJob as exc:  # a bad --since
            fail(str(exc), EXIT_USAGE)
        last = since
        for event in stored:
            out.print(_line(event, json_out), highlight=False, soft_wrap=True)
            last = event.id
        if not follow:
            return
        if last is None:
            last = stored[-1].id if stored else None
        async for event in q.events(last) if last else q.events():
            out.print(_line(event, json_out), highlight=False, soft_wrap=True)

    on_queue(queue, body)


def register(root: typer.Typer) -> None:
    """Add ``redkeep events`` to the CLI."""
    root.command("events")(events)
