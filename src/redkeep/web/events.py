"""``/v1/queues/{queue}/events`` (Server-Sent Events), a job's events, per-minute throughput,
and the queue's events switch.

The event stream is resumable: a client that reconnects with ``Last-Event-ID`` (browsers do it
by themselves) or ``?since=`` gets every event after that id still kept by the queue. A comment
line every :data:`HEARTBEAT` seconds keeps idle connections open through proxies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import Header, Query
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from typing_extensions import TypedDict  # pydantic reads it on Python 3.11

from redkeep.queue.events import JobEvent, ThroughputPoint
from redkeep.queue.view import _json_form
from redkeep.web.errors import json_response
from redkeep.web.routing import JobId, QueueName, StrictBody, api_router, errors, services

__all__ = ["HEARTBEAT", "EventsSettings", "event_to_dict", "router"]

HEARTBEAT = 15.0
EVENT_ID = r"^\d{1,20}-\d{1,20}$"

router = api_router("/v1/queues/{queue}", tags=["events"])


class EventView(TypedDict):
    """A job event (``at``: seconds since the epoch)."""

    id: str
    job_id: str
    event: str
    at: float
    data: dict[str, Any]


class JobEvents(TypedDict):
    queue: str
    job_id: str
    events: list[EventView]


class MinuteView(TypedDict):
    minute: float
    completed: int
    failed: int


class Throughput(TypedDict):
    queue: str
    minutes: list[MinuteView]


class EventsSettingsView(TypedDict):
    queue: str
    enabled: bool
    max_events: int


class EventsSettings(StrictBody):
    """Body of ``PUT /v1/queues/{queue}/events/settings``."""

    enabled: bool = Field(description="Record job events (off: maximum throughput).")
    max_events: int | None = Field(
        None, ge=1, le=10_000_000, description="Events kept (approximately); null keeps it."
    )


def event_to_dict(event: JobEvent) -> EventView:
    """The JSON view of an event."""
    data = dict(event.data)
    if "progress" in data:
        data["progress"] = _json_form(data["progress"])
    return {"id": event.id, "job_id": event.job_id, "event": event.event, "at": event.at,
            "data": data}  # fmt: skip


def _minute(p: ThroughputPoint) -> MinuteView:
    return {"minute": p.minute, "completed": p.completed, "failed": p.failed}


@router.get(
    "/events",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Event stream."},
        **errors(400),
    },
    response_class=StreamingResponse,
)
async def events_stream(
    request: Request,
    queue: QueueName,
    since: Annotated[str | None, Query(pattern=EVENT_ID, description="Resume after.")] = None,
    last_event_id: Annotated[
        str | None, Header(pattern=EVENT_ID, description="Resume after (SSE reconnect).")
    ] = None,
) -> Response:
    """The queue's job events as Server-Sent Events (``id``, ``event`` = the event name,
    ``data`` = the event as JSON); only new ones unless resumed."""
    q = services(request).queue_view(queue)
    # the position now, before the response starts: nothing after "connected" is missed
    start = last_event_id or since or await q.last_event_id()
    return StreamingResponse(
        _sse(q.events(start)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _sse(events: AsyncIterator[JobEvent]) -> AsyncIterator[bytes]:
    """Frames for ``events``, with a heartbeat comment while nothing happens."""
    pending: asyncio.Queue[JobEvent] = asyncio.Queue(1000)

    async def pump() -> None:
        async for event in events:
            await pending.put(event)

    task = asyncio.create_task(pump())
    try:
        yield b": connected\n\n"
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT):
                    event = await pending.get()
            except TimeoutError:
                if task.done():
                    task.result()  # the reader failed: end the stream with its error
                yield b": keep-alive\n\n"
                continue
            body = orjson.dumps(event_to_dict(event)).decode()
            yield f"id: {event.id}\nevent: {event.event}\ndata: {body}\n\n".encode()
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


@router.get("/jobs/{job_id}/events", response_model=JobEvents, responses=errors(400))
async def job_events(
    request: Request,
    queue: QueueName,
    job_id: JobId,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    """The events of one job still in the queue's event log, oldest first."""
    found = await services(request).queue_view(queue).job_events(job_id, limit)
    return json_response(
        {"queue": queue, "job_id": job_id, "events": [event_to_dict(e) for e in found]}
    )


@router.get("/throughput", response_model=Throughput, responses=errors(400))
async def throughput(
    request: Request,
    queue: QueueName,
    minutes: Annotated[int, Query(ge=1, le=60, description="Minutes back.")] = 15,
) -> Response:
    """Jobs completed and failed per minute, oldest first (the last minute is partial)."""
    points = await services(request).queue_view(queue).throughput(minutes)
    return json_response({"queue": queue, "minutes": [_minute(p) for p in points]})


@router.get("/events/settings", response_model=EventsSettingsView, responses=errors(400))
async def events_settings(request: Request, queue: QueueName) -> Response:
    """Whether the queue records job events, and how many it keeps."""
    config = await services(request).queue_view(queue).events_config()
    return json_response(
        {"queue": queue, "enabled": config.enabled, "max_events": config.max_events}
    )


@router.put("/events/settings", response_model=EventsSettingsView, responses=errors(400, 415, 422))
async def events_settings_put(request: Request, queue: QueueName, body: EventsSettings) -> Response:
    """Switch job events on or off for every process using the queue."""
    q = services(request).queue(queue)
    await q.set_events(body.enabled, body.max_events)
    config = await q.events_config()
    return json_response(
        {"queue": queue, "enabled": config.enabled, "max_events": config.max_events}
    )
