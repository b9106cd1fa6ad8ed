"""The dashboard's pages (GET): overview, queue, job, workers, login, and its static files."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from redkeep.names import check_name
from redkeep.queue.job import FINISHED, MAX_NAME, JobStatus
from redkeep.queue.view import job_to_dict
from redkeep.web.errors import ApiError
from redkeep.web.routing import JOB_ID_PATTERN, JobId, QueueName, services
from redkeep.web.ui import data
from redkeep.web.ui.guard import UiRoute, page_session, require_enabled, safe_next, sessions
from redkeep.web.ui.limits import queue_limits
from redkeep.web.ui.render import render, static_response
from redkeep.web.ui.session import COOKIE, Session
from redkeep.web.ui.timeline import MAX_TIMELINE, TimelineCache, TimelineRow, progress_of

__all__ = ["router"]

router = APIRouter(route_class=UiRoute, include_in_schema=False)

PageSession = Annotated[Session, Depends(page_session)]
MAX_PAGE = 200
_JOB_ID = re.compile(JOB_ID_PATTERN[1:-1])


def _common(request: Request, session: Session | None, title: str, **extra: Any) -> dict[str, Any]:
    svc = services(request)
    return {
        "title": title,
        "csrf": session.csrf if session is not None else "",
        "login_required": sessions(request).login_required,
        "refresh_ms": int(svc.settings.ui_refresh_interval * 1000),
        "backend": svc.backend,
        "degraded": svc.degraded_reason,
        **extra,
    }


def _timelines(request: Request) -> TimelineCache:
    """The app's cache of job timelines (made on first use)."""
    state = request.app.state
    found: TimelineCache | None = getattr(state, "ui_timelines", None)
    if found is None:
        found = state.ui_timelines = TimelineCache()
    return found


@router.get("")
async def root(request: Request) -> Response:
    """``/ui`` -> ``/ui/``."""
    require_enabled(request)
    return RedirectResponse("/ui/", 307)


@router.get("/")
async def overview(request: Request, session: PageSession) -> Response:
    """Every queue with its counts, the caches of this service, the number of live workers."""
    svc = services(request)
    rows, total, problem = await data.queue_rows(svc)
    try:
        workers: list[Any] | None = await svc.workers().list()
    except Exception as exc:
        workers, problem = None, problem or data.problem_text(exc)
    ctx = _common(
        request,
        session,
        "Overview",
        nav="overview",
        live=("queues", "caches", "workers_summary"),
        rows=rows,
        total=total,
        problem=problem,
        statuses=[s.value for s in JobStatus],
        caches=data.cache_rows(svc),
        breaker=svc.caches.breaker.state if svc.caches is not None else None,
        workers=workers,
        limit=data.MAX_OVERVIEW_QUEUES,
    )
    return render(request, "overview.html", ctx, session=session)


@router.get("/queues/{queue}")
async def queue_page(
    request: Request,
    session: PageSession,
    queue: QueueName,
    status: Annotated[JobStatus, Query()] = JobStatus.WAITING,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 25,
    name: Annotated[str | None, Query(max_length=MAX_NAME)] = None,
    job: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """A queue's jobs of one status, a page at a time; find a job by id or filter by name."""
    svc = services(request)
    view = svc.queue_view(queue)
    missing = None
    if job:
        job = job.strip()
        found = await view.get_job(job) if _JOB_ID.fullmatch(job) else None
        if found is not None:
            return RedirectResponse(f"/ui/queues/{queue}/jobs/{job}", 303)
        missing = job
    counts = await view.counts()
    page = await data.job_page(svc, queue, status, offset, limit, name or None)
    ctx = _common(
        request,
        session,
        f"Queue {queue}",
        nav="queue",
        live=("counts", "jobs"),
        queue=queue,
        counts=counts,
        statuses=[s.value for s in JobStatus],
        finished=[s.value for s in JobStatus if s in FINISHED],
        page=page,
        missing=missing,
        paused=await view.is_paused(),
        limits=await queue_limits(view),
    )
    return render(request, "queue.html", ctx, session=session)


@router.get("/queues/{queue}/jobs/{job_id}")
async def job_page(
    request: Request, session: PageSession, queue: QueueName, job_id: JobId
) -> Response:
    """Everything about one job, and the actions it allows."""
    view = services(request).queue_view(queue)
    job = await view.get_job(job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"no job {job_id!r} in queue {queue!r}")
    try:
        events: list[TimelineRow] | None = await _timelines(request).rows(view, job)
    except Exception:  # the job still shows; its timeline says it could not be read
        events = None
    ctx = _common(
        request,
        session,
        f"Job {job_id}",
        nav="queue",
        live=("job",),
        queue=queue,
        job=job_to_dict(job),
        actions=data.actions_for(job),
        progress=progress_of(job),
        events=events,
        max_events=MAX_TIMELINE,
    )
    return render(request, "job.html", ctx, session=session)


@router.get("/schedules")
async def schedules_page(
    request: Request,
    session: PageSession,
    queue: Annotated[str | None, Query(max_length=MAX_NAME)] = None,
) -> Response:
    """The schedules of every queue (or of one), with their next run and pause/resume."""
    if queue:
        check_name(queue, "queue name")
    rows, problem = await data.schedule_rows(services(request), queue)
    ctx = _common(
        request,
        session,
        f"Schedules of {queue}" if queue else "Schedules",
        nav="schedules",
        live=("schedules",),
        rows=rows,
        queue=queue,
        problem=problem,
    )
    return render(request, "schedules.html", ctx, session=session)


@router.get("/workers")
async def workers_page(request: Request, session: PageSession) -> Response:
    """The live workers of the backend, from their heartbeats."""
    from redkeep.queue.workers import HEARTBEAT_TTL

    problem = None
    try:
        workers = await services(request).workers().list()
    except Exception as exc:
        workers, problem = [], data.problem_text(exc)
    ctx = _common(
        request,
        session,
        "Workers",
        nav="workers",
        live=("workers",),
        workers=workers,
        problem=problem,
        ttl=HEARTBEAT_TTL,
    )
    return render(request, "workers.html", ctx, session=session)


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    """The login form (straight to the dashboard when no token is set or already logged in)."""
    require_enabled(request)
    store = sessions(request)
    target = safe_next(next)
    if not store.login_required or store.read(request.cookies.get(COOKIE)) is not None:
        return RedirectResponse(target, 303)
    ctx = _common(request, None, "Log in", nav="login", next=target)
    return render(request, "login.html", ctx)


@router.get("/static/{name}")
async def static(request: Request, name: str) -> Response:
    """The dashboard's CSS and script (public: the login page needs them)."""
    require_enabled(request)
    found = static_response(name)
    if found is None:
        raise ApiError(404, "not_found", "no such file")
    return found
