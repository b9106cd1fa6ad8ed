"""``redkeep jobs list|show|retry|cancel|purge``: inspect and act on jobs in Redis."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from redkeep.cli.ops import (
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    EXIT_USAGE,
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
from redkeep.queue.job import FINISHED, Job, JobStatus
from redkeep.queue.view import job_to_dict

if TYPE_CHECKING:
    from redkeep.queue.redis import RedisJobQueue

__all__ = ["app", "register"]

app = typer.Typer(help="Inspect and act on jobs: list, show, retry, cancel, purge.")


def _status(value: str) -> JobStatus:
    try:
        return JobStatus(value)
    except ValueError:
        names = ", ".join(s.value for s in JobStatus)
        fail(f"unknown status {value!r} (expected one of {names})", EXIT_USAGE)


@app.command("list")
def list_jobs(
    status: Annotated[
        str, typer.Argument(help="waiting, delayed, active, completed, failed, cancelled")
    ] = "waiting",
    queue: QueueOption = "default",
    offset: Annotated[int, typer.Option(min=0, help="Skip this many jobs.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Show at most this many.")] = 50,
    json_out: JsonOption = False,
) -> None:
    """Jobs of one status: waiting in run order, delayed by run_at, finished newest first."""
    st = _status(status)
    jobs = on_queue(queue, lambda q: q.list_jobs(st, offset, limit))
    if json_out:
        emit_json({"queue": queue, "status": st.value, "jobs": [job_to_dict(j) for j in jobs]})
        return
    table = Table(
        "id",
        "name",
        "priority",
        "attempts",
        "created",
        "run at",
        "error",
        title=f"{st.value} jobs in {queue!r}",
    )
    for job in jobs:
        error = f"{job.error.type}: {job.error.message}" if job.error else ""
        table.add_row(
            job.id,
            job.name,
            str(job.priority),
            f"{job.attempts}/{job.max_attempts}",
            utc_time(job.created_at),
            utc_time(job.run_at),
            error[:80],
        )
    out.print(table)
    if not jobs:
        out.print("(none)")


async def _get(q: RedisJobQueue, job_id: str) -> Job:
    job = await q.get_job(job_id)
    if job is None:
        fail(f"no job {job_id!r} in queue {q.name!r}", EXIT_NOT_FOUND)
    return job


@app.command("show")
def show(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    queue: QueueOption = "default",
    json_out: JsonOption = False,
) -> None:
    """Everything about one job: state, attempts, times, payload, result, last error."""
    job = on_queue(queue, lambda q: _get(q, job_id))
    if json_out:
        emit_json(job_to_dict(job))
        return
    table = Table("field", "value", title=f"job {job.id} ({queue})", show_header=False)
    data: Mapping[str, Any] = job_to_dict(job)
    for field in ("id", "name", "status", "priority", "worker_id", "timeout"):
        table.add_row(field, "-" if data[field] is None else str(data[field]))
    table.add_row("attempts", f"{job.attempts} of {job.max_attempts}")
    for field in ("created_at", "run_at", "started_at", "finished_at"):
        table.add_row(field, utc_time(data[field]))
    table.add_row("payload", repr(job.payload))
    for name, value in job.headers.items():
        table.add_row(f"header {name}", value)
    if job.dedup_key is not None:
        table.add_row("dedup_key", job.dedup_key)
    if job.group is not None:
        table.add_row("group", job.group)
    if job.result is not None:
        table.add_row("result", repr(job.result))
    if job.error is not None:
        table.add_row("error", f"{job.error.type}: {job.error.message}")
        if job.error.traceback:
            table.add_row("traceback", job.error.traceback)
    out.print(table)


def _act(action: str, job_id: str, queue: str, json_out: bool) -> None:
    async def body(q: RedisJobQueue) -> tuple[bool, Job]:
        job = await _get(q, job_id)
        done = await (q.retry(job_id) if action == "retry" else q.cancel(job_id))
        return bool(done), job

    done, job = on_queue(queue, body)
    if json_out:
        emit_json(
            {
                "id": job_id,
                "queue": queue,
                "action": action,
                "done": done,
                "status_before": str(job.status),
            }
        )
    elif done:
        verb = "requeued" if action == "retry" else "cancelled"
        out.print(f"job {job_id} {verb} (was {job.status})")
    if not done:
        why = "only failed jobs can be retried" if action == "retry" else "it is already finished"
        fail(f"cannot {action} job {job_id!r}: it is {job.status} ({why})", EXIT_REFUSED)


@app.command("retry")
def retry(
    job_id: Annotated[str, typer.Argument(help="The id of a failed job.")],
    queue: QueueOption = "default",
    json_out: JsonOption = False,
) -> None:
    """Move a failed job back to waiting, with its attempts reset."""
    _act("retry", job_id, queue, json_out)


@app.command("cancel")
def cancel(
    job_id: Annotated[str, typer.Argument(help="The id of a waiting, delayed or active job.")],
    queue: QueueOption = "default",
    json_out: JsonOption = False,
) -> None:
    """Cancel a job: a waiting or delayed job never runs; an active one is interrupted."""
    _act("cancel", job_id, queue, json_out)


@app.command("purge")
def purge(
    status: Annotated[str, typer.Argument(help="completed, failed or cancelled")],
    queue: QueueOption = "default",
    yes: YesOption = False,
    json_out: JsonOption = False,
) -> None:
    """Delete every job of a finished status from a queue."""
    st = _status(status)
    if st not in FINISHED:
        fail(f"purge only takes completed, failed or cancelled, not {st.value!r}", EXIT_USAGE)
    if not yes:
        confirm(f"Delete every {st.value} job of queue {queue!r}?")
    started = time.perf_counter()
    removed = on_queue(queue, lambda q: q.purge(st))
    if json_out:
        emit_json({"queue": queue, "status": st.value, "purged": removed})
    else:
        out.print(
            f"purged {removed} {st.value} job(s) from {queue!r} "
            f"in {time.perf_counter() - started:.2f}s"
        )


def register(root: typer.Typer) -> None:
    """Add ``redkeep jobs ...`` to the CLI."""
    root.add_typer(app, name="jobs")
