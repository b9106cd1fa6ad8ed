"""``/v1/queues/{queue}/schedules``: create, read, list, pause, resume and delete schedules.

A schedule enqueues a job on a cron expression or every N seconds (see
:mod:`redkeep.queue.schedules` and docs/schedules.md). Invalid definitions are refused with
422 naming the field, and nothing is written.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from typing_extensions import TypedDict  # pydantic reads it on Python 3.11

from redkeep.errors import InvalidJob
from redkeep.queue.job import MAX_NAME, MAX_PRIORITY
from redkeep.queue.schedule_model import (
    MAX_EVERY,
    MAX_SCHEDULE_ID,
    MAX_TIME,
    MIN_EVERY,
    SCHEDULE_ID,
    Schedule,
)
from redkeep.queue.view import _json_form
from redkeep.web.errors import ApiError, json_response
from redkeep.web.routing import QueueName, StrictBody, api_router, errors, services

__all__ = ["ScheduleRequest", "ScheduleView", "router", "schedule_to_dict"]

router = api_router("/v1/queues/{queue}/schedules", tags=["schedules"])

ScheduleId = Annotated[
    str,
    Path(
        pattern=SCHEDULE_ID.pattern,
        description=f"Schedule id: 1-{MAX_SCHEDULE_ID} characters of A-Z a-z 0-9 _ . : -.",
    ),
]


class ScheduleRequest(StrictBody):
    """Body of ``PUT /v1/queues/{queue}/schedules/{schedule_id}``: give ``cron`` or ``every``."""

    name: str = Field(min_length=1, max_length=MAX_NAME, description="Handler name.")
    payload: Any = Field(None, description="Any JSON value, passed to each job's handler.")
    cron: str | None = Field(
        None, max_length=200, description="Cron expression: 5 fields, or 6 with seconds."
    )
    every: float | None = Field(
        None, ge=MIN_EVERY, le=MAX_EVERY, description="Seconds between jobs."
    )
    tz: str = Field("UTC", max_length=64, description="IANA time zone the cron runs in.")
    start_at: float | None = Field(
        None, ge=0, le=MAX_TIME, description="No job before (seconds since the epoch)."
    )
    end_at: float | None = Field(
        None, ge=0, le=MAX_TIME, description="No job after (seconds since the epoch)."
    )
    misfire: Literal["skip", "run_once", "catch_up"] = Field(
        "skip", description="What to do with ticks missed while no worker ran."
    )
    priority: int = Field(0, ge=-MAX_PRIORITY, le=MAX_PRIORITY, description="Jobs' priority.")
    max_attempts: int | None = Field(None, ge=1, le=1000, description="Jobs' attempts.")
    timeout: float | None = Field(None, gt=0, le=86400, description="Seconds per attempt.")


class ScheduleView(TypedDict):
    """A schedule as JSON (times in seconds since the epoch)."""

    id: str
    queue: str
    name: str
    payload: Any
    cron: str | None
    every: float | None
    tz: str
    start_at: float | None
    end_at: float | None
    misfire: str
    priority: int
    max_attempts: int | None
    timeout: float | None
    next_run_at: float | None
    paused: bool
    last_job_id: str | None
    created_at: float | None


class ScheduleList(TypedDict):
    queue: str
    schedules: list[ScheduleView]


class ScheduleChanged(TypedDict):
    id: str
    done: bool


def schedule_to_dict(s: Schedule) -> ScheduleView:
    """The JSON view of a schedule (the payload in the serializer's JSON form)."""
    return {
        "id": s.id, "queue": s.queue, "name": s.name, "payload": _json_form(s.payload),
        "cron": s.cron, "every": s.every, "tz": s.tz, "start_at": s.start_at,
        "end_at": s.end_at, "misfire": s.misfire, "priority": s.priority,
        "max_attempts": s.max_attempts, "timeout": s.timeout, "next_run_at": s.next_run_at,
        "paused": s.paused, "last_job_id": s.last_job_id, "created_at": s.created_at,
    }  # fmt: skip


def _not_found() -> ApiError:
    return ApiError(404, "schedule_not_found", "no schedule with that id", field="schedule_id")


@router.put("/{schedule_id}", response_model=ScheduleView, responses=errors(400, 413, 415, 422))
async def schedule_put(
    request: Request, queue: QueueName, schedule_id: ScheduleId, body: ScheduleRequest
) -> Response:
    """Create or replace a schedule (its paused state and last job are kept)."""
    try:
        s = await services(request).queue(queue).schedule(
            schedule_id, body.name, body.payload, cron=body.cron, every=body.every, tz=body.tz,
            start_at=body.start_at, end_at=body.end_at, misfire=body.misfire,
            priority=body.priority, max_attempts=body.max_attempts, timeout=body.timeout,
        )  # fmt: skip
    except InvalidJob as exc:
        field, sep, _ = str(exc).partition(":")
        raise ApiError(
            422, "invalid_schedule", str(exc), field=field if sep and " " not in field else None
        ) from None
    return json_response(schedule_to_dict(s))


@router.get("", response_model=ScheduleList, responses=errors(400))
async def schedule_list(request: Request, queue: QueueName) -> Response:
    """Every schedule of the queue, by id."""
    found = await services(request).queue_view(queue).list_schedules()
    return json_response({"queue": queue, "schedules": [schedule_to_dict(s) for s in found]})


@router.get("/{schedule_id}", response_model=ScheduleView, responses=errors(400, 404))
async def schedule_get(request: Request, queue: QueueName, schedule_id: ScheduleId) -> Response:
    """One schedule, or 404."""
    s = await services(request).queue_view(queue).get_schedule(schedule_id)
    if s is None:
        raise _not_found()
    return json_response(schedule_to_dict(s))


@router.delete("/{schedule_id}", response_model=ScheduleChanged, responses=errors(400, 404))
async def schedule_delete(request: Request, queue: QueueName, schedule_id: ScheduleId) -> Response:
    """Delete a schedule (jobs it already enqueued stay), or 404."""
    if not await services(request).queue_view(queue).unschedule(schedule_id):
        raise _not_found()
    return json_response({"id": schedule_id, "done": True})


@router.post("/{schedule_id}/pause", response_model=ScheduleView, responses=errors(400, 404, 415))
async def schedule_pause(request: Request, queue: QueueName, schedule_id: ScheduleId) -> Response:
    """Pause a schedule: no job is enqueued for it until it is resumed."""
    return await _set_paused(request, queue, schedule_id, True)


@router.post("/{schedule_id}/resume", response_model=ScheduleView, responses=errors(400, 404, 415))
async def schedule_resume(request: Request, queue: QueueName, schedule_id: ScheduleId) -> Response:
    """Resume a paused schedule at its next future tick."""
    return await _set_paused(request, queue, schedule_id, False)


async def _set_paused(request: Request, queue: str, schedule_id: str, paused: bool) -> Response:
    q = services(request).queue_view(queue)
    done = await (q.pause_schedule(schedule_id) if paused else q.resume_schedule(schedule_id))
    s = await q.get_schedule(schedule_id) if done else None
    if s is None:
        raise _not_found()
    return json_response(schedule_to_dict(s))
