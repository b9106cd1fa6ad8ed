"""``redkeep schedules list|show|pause|resume|delete``: inspect and act on a queue's schedules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from redkeep.cli.ops import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    JsonOption,
    backend_client,
    confirm,
    emit_json,
    fail,
    load_settings,
    out,
    run,
)
from redkeep.errors import InvalidJob
from redkeep.queue.schedules import Schedule

__all__ = ["app", "register"]

app = typer.Typer(help="Inspect and act on schedules: list, show, pause, resume, delete.")

QueueOption = Annotated[str, typer.Option("--queue", "-q", help="Queue name.")]
IdArgument = Annotated[str, typer.Argument(help="The schedule id.")]


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _queue(client: Any, name: str) -> Any:
    from redkeep.queue.redis import RedisJobQueue

    try:
        return RedisJobQueue(client, name, key_prefix=load_settings().key_prefix)
    except InvalidJob as exc:
        fail(str(exc), EXIT_USAGE)


def _view(s: Schedule) -> dict[str, Any]:
    from redkeep.web.schedules import schedule_to_dict

    return dict(schedule_to_dict(s))


def _timing(s: Schedule) -> str:
    return f"cron {s.cron} ({s.tz})" if s.cron else f"every {s.every:g} s"


@app.command("list")
def list_schedules(queue: QueueOption = "default", json_out: JsonOption = False) -> None:
    """Every schedule of a queue: timing, next run, paused, last job."""
    settings = load_settings()

    async def body() -> list[Schedule]:
        async with backend_client(settings) as client:
            found: list[Schedule] = await _queue(client, queue).list_schedules()
            return found

    found = run(body)
    if json_out:
        emit_json({"queue": queue, "schedules": [_view(s) for s in found]})
        return
    table = Table("id", "handler", "timing", "next run (UTC)", "paused", "last job",
                  title=f"schedules of {queue!r}")  # fmt: skip
    for s in found:
        table.add_row(s.id, s.name, _timing(s), _when(s.next_run_at), "yes" if s.paused else "",
                      s.last_job_id or "-")  # fmt: skip
    out.print(table)
    if not found:
        out.print("(none)")


async def _get(client: Any, queue: str, schedule_id: str) -> Schedule:
    s: Schedule | None = await _queue(client, queue).get_schedule(schedule_id)
    if s is None:
        fail(f"no schedule {schedule_id!r} in queue {queue!r}", EXIT_NOT_FOUND)
    return s


@app.command("show")
def show(schedule_id: IdArgument, queue: QueueOption = "default", json_out: JsonOption = False
         ) -> None:  # fmt: skip
    """Everything about one schedule."""
    settings = load_settings()

    async def body() -> Schedule:
        async with backend_client(settings) as client:
            return await _get(client, queue, schedule_id)

    s = run(body)
    if json_out:
        emit_json(_view(s))
        return
    table = Table("field", "value", title=f"schedule {s.id} ({queue})", show_header=False)
    for field, value in _view(s).items():
        if field in ("next_run_at", "created_at", "start_at", "end_at"):
            value = _when(value)
        table.add_row(field, "-" if value is None else str(value))
    out.print(table)


def _act(action: str, schedule_id: str, queue: str, json_out: bool) -> None:
    settings = load_settings()

    async def body() -> bool:
        async with backend_client(settings) as client:
            q = _queue(client, queue)
            await _get(client, queue, schedule_id)
            if action == "pause":
                return bool(await q.pause_schedule(schedule_id))
            if action == "resume":
                return bool(await q.resume_schedule(schedule_id))
            return bool(await q.unschedule(schedule_id))

    done = run(body)
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
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Delete a schedule (the jobs it already enqueued stay)."""
    if not yes:
        confirm(f"Delete schedule {schedule_id!r} of queue {queue!r}?")
    _act("delete", schedule_id, queue, json_out)


def register(root: typer.Typer) -> None:
    """Add ``redkeep schedules ...`` to the CLI."""
    root.add_typer(app, name="schedules")
