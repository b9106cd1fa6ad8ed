"""The dashboard's actions: POSTs with a JSON body and the session's CSRF token.

Each answers ``{"message": ..., "redirect": ...}`` (where to go next, or null to stay) or the
API's JSON error body. Login and logout are here too.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from typing_extensions import TypedDict  # pydantic reads it on Python 3.11

from redkeep.queue.job import JobStatus
from redkeep.web.errors import ApiError, json_response
from redkeep.web.routing import JobId, QueueName, StrictBody, services
from redkeep.web.schedules import ScheduleId
from redkeep.web.ui import data
from redkeep.web.ui.guard import UiRoute, action_session, require_enabled, safe_next, sessions
from redkeep.web.ui.render import set_session_cookie
from redkeep.web.ui.session import COOKIE, Session

__all__ = ["ActionResult", "router"]

router = APIRouter(route_class=UiRoute, include_in_schema=False)

ActionSession = Annotated[Session, Depends(action_session)]


class ActionResult(TypedDict):
    """What an action did, and where the dashboard goes next (null: stay and refresh)."""

    message: str
    redirect: str | None


class LoginBody(StrictBody):
    token: str = Field(max_length=4096)
    next: str | None = Field(None, max_length=2048)


class NoBody(StrictBody):
    pass


class PurgeBody(StrictBody):
    status: Literal["completed", "failed", "cancelled"]


def _done(message: str, redirect: str | None = None) -> Response:
    result: ActionResult = {"message": message, "redirect": redirect}
    return json_response(result)


@router.post("/login")
async def login(request: Request, body: LoginBody) -> Response:
    """Exchange the API token for a session cookie."""
    require_enabled(request)
    store = sessions(request)
    if not store.login_required:
        return _done("no token is needed", safe_next(body.next))
    if not store.check_token(body.token):
        raise ApiError(401, "invalid_token", "that is not the API token", field="token")
    session = store.issue()
    response = _done("logged in", safe_next(body.next))
    set_session_cookie(request, response, session)
    return response


@router.post("/logout")
async def logout(request: Request, session: ActionSession, body: NoBody) -> Response:
    """End the session and delete its cookie."""
    sessions(request).revoke(session)
    response = _done("logged out", "/ui/login")
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


@router.post("/queues/{queue}/retry-failed")
async def retry_failed(
    request: Request, session: ActionSession, queue: QueueName, body: NoBody
) -> Response:
    """Send the queue's failed jobs back to waiting (up to 10,000 per click)."""
    moved, more = await data.retry_failed(services(request), queue)
    message = f"{moved} failed job{'s' if moved != 1 else ''} sent back to waiting"
    if more:
        message += "; more remain: retry again"
    return _done(message)


@router.post("/queues/{queue}/pause")
async def pause(
    request: Request, session: ActionSession, queue: QueueName, body: NoBody
) -> Response:
    """Pause the queue: no worker claims its jobs until it is resumed."""
    await services(request).queue(queue).pause()
    return _done(f"queue {queue} paused")


@router.post("/queues/{queue}/resume")
async def resume(
    request: Request, session: ActionSession, queue: QueueName, body: NoBody
) -> Response:
    """Resume the queue: idle workers claim its jobs at once."""
    await services(request).queue(queue).resume()
    return _done(f"queue {queue} resumed")


@router.post("/queues/{queue}/schedules/{schedule_id}/{action}")
async def schedule_action(
    request: Request,
    session: ActionSession,
    queue: QueueName,
    schedule_id: ScheduleId,
    action: Literal["pause", "resume"],
    body: NoBody,
) -> Response:
    """Pause a schedule (no job for its ticks until resumed) or resume it at its next tick."""
    q = services(request).queue_view(queue)
    change = q.pause_schedule if action == "pause" else q.resume_schedule
    if not await change(schedule_id):
        raise ApiError(404, "schedule_not_found", f"no schedule {schedule_id!r} in {queue!r}")
    return _done(f"schedule {schedule_id} {'paused' if action == 'pause' else 'resumed'}")


@router.post("/queues/{queue}/purge")
async def purge(
    request: Request, session: ActionSession, queue: QueueName, body: PurgeBody
) -> Response:
    """Delete every job of one finished status."""
    n = await services(request).queue_view(queue).purge(JobStatus(body.status))
    return _done(f"{n} {body.status} job{'s' if n != 1 else ''} deleted")


@router.post("/queues/{queue}/jobs/{job_id}/{action}")
async def job_action(
    request: Request,
    session: ActionSession,
    queue: QueueName,
    job_id: JobId,
    action: Literal["retry", "cancel", "delete"],
    body: NoBody,
) -> Response:
    """Retry (a failed job), cancel (a waiting, delayed or active one) or delete (any but an
    active one) a job."""
    q = services(request).queue_view(queue)
    job = await q.get_job(job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"no job {job_id!r} in queue {queue!r}")
    if action == "delete":
        if not await q.delete_job(job_id):
            raise ApiError(404, "job_not_found", f"no job {job_id!r} in queue {queue!r}")
        return _done(f"job {job_id} deleted", f"/ui/queues/{queue}?status={job.status}")
    if action == "retry":
        if not await q.retry(job_id):
            why = f"job {job_id} is {job.status}: only failed jobs can be retried"
            raise ApiError(409, "job_conflict", why)
        return _done(f"job {job_id} sent back to waiting")
    if not await q.cancel(job_id):
        raise ApiError(409, "job_conflict", f"job {job_id} is already {job.status}")
    return _done(f"job {job_id} cancelled")
