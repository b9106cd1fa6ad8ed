"""``/v1/queues``: enqueue jobs, list and read them, cancel, retry and delete them, count them.

Jobs are shown in the one job view of :mod:`redkeep.queue.view` (the same JSON as
``redkeep jobs show --json`` and snapshots). Only ``POST .../jobs`` opens a queue; reads of a
queue this service has not opened use :meth:`~redkeep.services.Services.queue_view`.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import Field, ValidationInfo, field_validator
from starlette.requests import Request
from starlette.responses import Response
from typing_extensions import TypedDict  # pydantic reads it on Python 3.11

from redkeep.errors import InvalidJob, JobNotFound
from redkeep.names import NAME_PATTERN, NAME_RULE
from redkeep.queue.job import MAX_DEDUP_KEY, MAX_HEADERS, MAX_NAME, MAX_PRIORITY, JobStatus
from redkeep.queue.view import JobView, job_to_dict
from redkeep.web.errors import ApiError, json_response
from redkeep.web.limits import GroupLimitView, RateLimitView, group_limit_view, rate_limit_view
from redkeep.web.routing import (
    JOB_ID_PATTERN,
    JobId,
    QueueName,
    StrictBody,
    api_router,
    errors,
    services,
)

__all__ = ["MAX_LIST_LIMIT", "EnqueueRequest", "enqueue_options", "router"]

MAX_LIST_LIMIT = 500
MAX_HTTP_PARENTS = 1000
MAX_WAIT = 60.0

router = api_router("/v1/queues", tags=["queues"])


class EnqueueRequest(StrictBody):
    """Body of ``POST /v1/queues/{queue}/jobs``."""

    name: str = Field(min_length=1, max_length=MAX_NAME, description="Handler name.")
    payload: Any = Field(None, description="Any JSON value, passed to the handler.")
    job_id: str | None = Field(
        None,
        pattern=JOB_ID_PATTERN,
        description="Your id for the job: enqueueing the same id again returns the existing job.",
    )
    priority: int = Field(0, ge=-MAX_PRIORITY, le=MAX_PRIORITY, description="Higher runs first.")
    delay: float | None = Field(None, ge=0, le=365 * 86400, description="Seconds to wait.")
    max_attempts: int | None = Field(None, ge=1, le=1000, description="Attempts before failed.")
    timeout: float | None = Field(None, gt=0, le=86400, description="Seconds per attempt.")
    headers: dict[str, str] | None = Field(
        None,
        max_length=MAX_HEADERS,
        description="String metadata stored with the job (e.g. a W3C traceparent).",
    )
    dedup_key: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_DEDUP_KEY,
        description="While the job last enqueued with this key is unfinished (or for "
        "dedup_ttl seconds after its enqueue), enqueueing with the key returns that job.",
    )
    dedup_ttl: float | None = Field(
        None, gt=0, le=365 * 86400, description="Seconds the dedup key holds after the enqueue."
    )
    debounce: float | None = Field(
        None,
        gt=0,
        le=365 * 86400,
        description="Start the job this many seconds from now; an enqueue with the same "
        "dedup_key before it started replaces its payload and pushes its start again.",
    )

    group: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="The job's group: groups are served round-robin and each is held to the "
        "queue's group limit (PUT .../group-limit). " + NAME_RULE + ".",
    )
    depends_on: list[Annotated[str, Field(pattern=JOB_ID_PATTERN)]] | None = Field(
        None,
        max_length=MAX_HTTP_PARENTS,
        description="Ids of jobs of this queue that must complete first (the job is 'blocked' "
        "until then; in a batch, a job may depend on one earlier in the batch).",
    )
    on_parent_failure: Literal["fail", "cancel", "ignore"] = Field(
        "fail", description="What a failed or cancelled parent does to this job."
    )

    @field_validator("dedup_ttl", "debounce")
    @classmethod
    def _needs_dedup_key(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("dedup_key") is None:
            raise ValueError(f"{info.field_name} needs a dedup_key")
        if info.field_name == "debounce" and value is not None:
            if info.data.get("delay"):
                raise ValueError("debounce sets the start (now + debounce): give no delay")
            if info.data.get("dedup_ttl") is not None:
                raise ValueError("dedup_ttl does not apply with debounce (give one of them)")
        return value


def enqueue_options(body: EnqueueRequest) -> dict[str, Any]:
    """The keyword arguments of ``JobQueue.enqueue`` for ``body`` (beyond name and payload)."""
    options: dict[str, Any] = {"job_id": body.job_id, "priority": body.priority}
    if body.delay:
        options["delay"] = body.delay
    if body.max_attempts is not None:
        options["max_attempts"] = body.max_attempts
    if body.timeout is not None:
        options["timeout"] = body.timeout
    if body.headers:
        options["headers"] = body.headers
    if body.dedup_key is not None:
        options["dedup_key"] = body.dedup_key
        options["dedup_ttl"] = body.dedup_ttl
        options["debounce"] = body.debounce
    if body.group is not None:
        options["group"] = body.group
    if body.depends_on:
        options["depends_on"] = body.depends_on
        options["on_parent_failure"] = body.on_parent_failure
    return options


class QueueLimits(TypedDict):
    paused: bool
    rate_limit: RateLimitView | None
    group_limit: GroupLimitView | None


class QueueCounts(TypedDict):
    queue: str
    counts: dict[JobStatus, int]
    paused: bool
    limits: QueueLimits


class JobPage(TypedDict):
    queue: str
    status: JobStatus
    offset: int
    limit: int
    jobs: list[JobView]


class Cancelled(TypedDict):
    id: str
    cancelled: bool


class JobDeleted(TypedDict):
    id: str
    deleted: bool


@router.get("/{queue}/counts", response_model=QueueCounts, responses=errors(400))
async def queue_counts(request: Request, queue: QueueName) -> Response:
    """Jobs per status, whether the queue is paused, and its flow-control limits."""
    q = services(request).queue_view(queue)
    counts = await q.counts()
    paused = await q.is_paused()
    limits = {
        "paused": paused,
        "rate_limit": rate_limit_view(await q.get_rate_limit()),
        "group_limit": group_limit_view(await q.get_group_limit()),
    }
    return json_response({"queue": queue, "counts": counts, "paused": paused, "limits": limits})


@router.post(
    "/{queue}/jobs",
    status_code=201,
    response_model=JobView,
    responses=errors(400, 413, 415, 422),
)
async def job_enqueue(request: Request, queue: QueueName, body: EnqueueRequest) -> Response:
    """Enqueue a job; 201 with the job (the existing one when ``job_id`` is taken or
    ``dedup_key`` is live)."""
    options = enqueue_options(body)
    try:
        job = await services(request).queue(queue).enqueue(body.name, body.payload, **options)
    except InvalidJob as exc:
        raise ApiError(422, "validation_error", str(exc)) from None
    return json_response(job_to_dict(job), 201)


@router.get("/{queue}/jobs", response_model=JobPage, responses=errors(400))
async def job_list(
    request: Request,
    queue: QueueName,
    status: Annotated[JobStatus, Query(description="Which jobs.")] = JobStatus.WAITING,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 50,
) -> Response:
    """Jobs with one status: waiting in run order, delayed by run time, finished newest first."""
    jobs = await services(request).queue_view(queue).list_jobs(status, offset, limit)
    return json_response(
        {
            "queue": queue,
            "status": status,
            "offset": offset,
            "limit": limit,
            "jobs": [job_to_dict(j) for j in jobs],
        }
    )


@router.get("/{queue}/jobs/{job_id}", response_model=JobView, responses=errors(400, 404))
async def job_get(
    request: Request,
    queue: QueueName,
    job_id: JobId,
    wait: Annotated[
        float | None,
        Query(
            ge=0,
            le=MAX_WAIT,
            description="Long-poll: answer as soon as the job is finished, "
            "or with its current state after this many seconds.",
        ),
    ] = None,
) -> Response:
    """One job, or 404; with ``wait``, once it is finished (or the time is up)."""
    jobs = services(request).queue_view(queue)
    job = None
    if wait:
        with contextlib.suppress(TimeoutError, JobNotFound):
            job = await jobs.wait(job_id, timeout=wait)
    if job is None:
        job = await jobs.get_job(job_id)
    if job is None:
        raise ApiError(404, "job_not_found", "no job with that id", field="job_id")
    return json_response(job_to_dict(job))


@router.post(
    "/{queue}/jobs/{job_id}/cancel", response_model=Cancelled, responses=errors(400, 404, 415)
)
async def job_cancel(request: Request, queue: QueueName, job_id: JobId) -> Response:
    """Cancel a blocked, waiting, delayed or active job; ``cancelled`` is false for a finished
    one."""
    jobs = services(request).queue_view(queue)
    if await jobs.get_job(job_id) is None:
        raise ApiError(404, "job_not_found", "no job with that id", field="job_id")
    return json_response({"id": job_id, "cancelled": bool(await jobs.cancel(job_id))})


@router.post(
    "/{queue}/jobs/{job_id}/retry", response_model=JobView, responses=errors(400, 404, 409, 415)
)
async def job_retry(request: Request, queue: QueueName, job_id: JobId) -> Response:
    """Send a failed job back to waiting with its attempts reset (409 unless it failed)."""
    jobs = services(request).queue_view(queue)
    if await jobs.get_job(job_id) is None:
        raise ApiError(404, "job_not_found", "no job with that id", field="job_id")
    if not await jobs.retry(job_id):
        raise ApiError(409, "job_conflict", "only failed jobs can be retried")
    job = await jobs.get_job(job_id)
    if job is None:  # retention dropped it in between
        raise ApiError(404, "job_not_found", "no job with that id", field="job_id")
    return json_response(job_to_dict(job))


@router.delete("/{queue}/jobs/{job_id}", response_model=JobDeleted, responses=errors(400, 404, 409))
async def job_delete(request: Request, queue: QueueName, job_id: JobId) -> Response:
    """Delete a job that is not active (409 for an active one: cancel it first), or 404."""
    if not await services(request).queue_view(queue).delete_job(job_id):
        raise ApiError(404, "job_not_found", "no job with that id", field="job_id")
    return json_response({"id": job_id, "deleted": True})
