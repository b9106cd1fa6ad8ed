"""``redkeep schedules list|show|pause|resume|delete``: inspect and act on a queue's schedules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from redkeep.cli.ops import (
    EXIT_NOT_FOUND,
    JsonOption,
    QueueOption,
    YesOption,
    confirm,
    emit_json,
    fail,
    on_queue,
    out,
    utc_time,
)
from redkeep.queue.schedules import Schedule

if TYPE_CHECKING:
    from redkeep.queue.redis import RedisJobQueue

__all__ = ["app", "register"]

app = typer.Typer(help="Inspect and act on schedules: list, show, pause, resume, delete.")

IdArgument = Annotated[str, typer.Argument(help="The schedule id.")]


def _view(s: Schedule) -> dict[str, Any]:
    from redkeep.web.schedules import schedule_to_dict

    return dict(schedule_to_dict(s))


def _timing(s: Schedule) -> str:
    return f"cron {s.cron} ({s.tz})" if s.cron else f"every {s.every:g} s"


@app.command("list")
def list_schedules(queue: QueueOption = "default", json_out: JsonOption = False) -> None:
    """Every schedule of a queue: timing, next run, paused, last job."""
    found = on_queue(queue, lambda q: q.list_schedules())
    if json_out:
        emit_json({"queue": queue, "schedules": [_view(s) for s in found]})
        return
    table = Table("id", "handler", "timing", "next run (UTC)", "paused", "last job",
                  title=f"schedules of {queue!r}")  # fmt: skip
    for s in found:
        table.add_row(s.id, s.name, _timing(s), utc_time(s.next_run_at), "yes" if s.paused else "",
                      s.last_job_id or "-")  # fmt: skip
    out.print(table)
    if not found:
        out.print("(none)")


async def _get(q: RedisJobQueue, schedule_id: str) -> Schedule:
    s = await q.get_schedule(schedule_id)
    if s is None:
        fail(f"no schedule {schedule_id!r} in queue {q.name!r}", EXIT_NOT_FOUND)
    return s


@app.command("show")
def show(schedule_id: IdArgument, queue: QueueOption = "default", json_out: JsonOption = False
         ) -> None:  # fmt: skip
    """Everything about one schedule."""
    s = on_queue(queue, lambda q: _get(q, schedule_id))
    if json_out:
        emit_json(_view(s))
        return
    table = Table("field", "value", title=f"schedule {s.id} ({queue})", show_header=False)
    for field, value in _view(s).items():
        if field in ("next_run_at", "created_at", "start_at", "end_at"):
            value = utc_time(value)
        table.add_row(field, "-" if value is None else str(value))
    out.print(table)


def _act(action: str, schedule_id: str, queue: str, json_out: bool) -> None:
    async def body(q: RedisJobQueue) -> bool:
        await _get(q, schedule_id)
        if action == "pause":
            return bool(await q.pause_schedule(schedule_id))
        if action == "resume":
            return bool(await q.resume_schedule(schedule_id))
        return bool(await q.unschedule(schedule_id))

    done = on_queue(queue, body)
    if json_out:
        emit_json({"id": schedule_id, "queue": queue, "action": action, "done": done})
    else:
        verb = {"pause": "paused", "resume": "resumed", "delete": "deleted"}[action]
        out.print(f"schedule {schedule_id} {verb}")


@app.command("pause")
def pause(schedule_id: IdArgument, queue: QueueOption = "default", json_out: JsonOption = False
          ) -> None:  # fmt: skip
    """Enqueue no more jobs for a schedule until it is resumed."""
    _act("pause", schedule_id, queue, json_out)


@app.command("resume")
def resume(schedule_id: IdArgument, queue: QueueOption = "default", json_out: JsonOption = False
           ) -> None:  # fmt: skip
    """Resume a paused schedule at its next future tick."""
    _act("resume", schedule_id, queue, json_out)


@app.command("delete")
def delete(
    schedule_id: IdArgument,
    queue: QueueOption = "default",
    yes: YesOption = False,
    json_out: JsonOption = False,
) -> None:
    """Delete a schedule (the jobs it already enqueued stay)."""
    if not yes:
        confirm(f"Delete schedule {schedule_id!r} of queue {queue!r}?")
    _act("delete", schedule_id, queue, json_out)


def register(root: typer.Typer) -> None:
    """Add ``redkeep schedules ...`` to the CLI."""
    root.add_typer(app, name="schedules")
