"""``/v1/queues``: bulk operations: enqueue a batch of jobs, retry every failed job, cancel
every waiting job (see :mod:`redkeep.queue.bulk`)."""

from __future__ import annotations

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from typing_extensions import TypedDict  # pydantic reads it on Python 3.11

from redkeep.errors import InvalidJob
from redkeep.queue.job import MAX_NAME, JobSpec
from redkeep.queue.view import JobView, job_to_dict
from redkeep.web.errors import ApiError, json_response
from redkeep.web.queues import EnqueueRequest, enqueue_options
from redkeep.web.routing import QueueName, StrictBody, api_router, errors, services

__all__ = ["MAX_BATCH", "BatchRequest", "BulkRequest", "router"]

MAX_BATCH = 1000

router = api_router("/v1/queues", tags=["queues"])


class BatchRequest(StrictBody):
    """Body of ``POST /v1/queues/{queue}/jobs:batch``."""

    jobs: list[EnqueueRequest] = Field(
        min_length=1, max_length=MAX_BATCH, description="The jobs, each as for POST .../jobs."
    )


class BulkRequest(StrictBody):
    """Body of ``POST .../failed:retry`` and ``POST .../waiting:cancel`` (optional)."""

    name: str | None = Field(
        None, min_length=1, max_length=MAX_NAME, description="Only jobs of this handler."
    )
    limit: int | None = Field(None, ge=1, description="At most this many jobs.")


class JobBatch(TypedDict):
    queue: str
    jobs: list[JobView]


class BulkResult(TypedDict):
    queue: str
    count: int


@router.post(
    "/{queue}/jobs:batch",
    status_code=201,
    response_model=JobBatch,
    responses=errors(400, 413, 415, 422),
)
async def jobs_enqueue_batch(request: Request, queue: QueueName, body: BatchRequest) -> Response:
    """Enqueue up to 1,000 jobs; all are validated before any is written (one bad job: 422
    naming ``jobs.<index>.<field>``, nothing written). 201 with the jobs, in order."""
    specs = [JobSpec(j.name, j.payload, **enqueue_options(j)) for j in body.jobs]
    try:
        jobs = await services(request).queue(queue).enqueue_many(specs)
    except InvalidJob as exc:
        raise ApiError(422, "validation_error", str(exc), field="jobs") from None
    return json_response({"queue": queue, "jobs": [job_to_dict(j) for j in jobs]}, 201)


@router.post("/{queue}/failed:retry", response_model=BulkResult, responses=errors(400, 415, 422))
async def failed_retry(
    request: Request, queue: QueueName, body: BulkRequest | None = None
) -> Response:
    """Move failed jobs (of handler ``name``, at most ``limit``) back to waiting; ``count``:
    how many. Works in batches of 500."""
    body = body or BulkRequest()
    count = await services(request).queue(queue).retry_failed(body.name, body.limit)
    return json_response({"queue": queue, "count": count})


@router.post("/{queue}/waiting:cancel", response_model=BulkResult, responses=errors(400, 415, 422))
async def waiting_cancel(
    request: Request, queue: QueueName, body: BulkRequest | None = None
) -> Response:
    """Cancel waiting and delayed jobs (of handler ``name``, at most ``limit``); ``count``:
    how many. Active jobs are left alone. Works in batches of 500."""
    body = body or BulkRequest()
    count = await services(request).queue(queue).cancel_waiting(body.name, body.limit)
    return json_response({"queue": queue, "count": count})
