"""The contract between a :class:`~redkeep.queue.worker.Worker` and a queue backend.

A worker drives a queue only through the methods of :class:`WorkerQueue`; every backend
(:class:`~redkeep.queue.memory.MemoryJobQueue`, :class:`~redkeep.queue.redis.RedisJobQueue`)
implements them, and ``tests/queue/test_protocol.py`` checks each one. To write a backend, see
docs/queue.md, "Writing a backend".

A worker's life against one queue::

    await queue.worker_started(worker_id)
    announce the worker in queue.worker_registry() (start, heartbeats, stop)
    loop:
        result = await queue.step(StepRequest(worker_id, request_id, outcomes, claim, lease))
        ... run result.jobs; renew their leases with extend_leases() meanwhile ...
        when idle: job_or_woken = await queue.wait_for_jobs(worker_id, seconds)
    meanwhile, when the last pass says (at once on queue.schedules_changed()):
        await queue.fire_schedules(worker_id)
    await queue.worker_stopped(worker_id)

Delivery is at least once: a claimed job is leased; a worker that stops renewing loses it to
the next step of any worker after the lease expires. Every call may be sent twice by a
transport that lost a reply: ``step`` with the same ``request_id`` applies nothing the second
time and returns the same jobs, ``extend_leases`` only renews again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from redkeep.queue.backoff import Backoff
    from redkeep.queue.job import Job
    from redkeep.queue.workers import WorkerRegistry

__all__ = ["Outcome", "StepRequest", "StepResult", "WorkerQueue", "new_request_id"]


@dataclass
class Outcome:
    """What a worker reports for one attempt.

    kind: ``done`` (``data`` is the encoded result), ``retry`` (failed attempt, ``data`` the
    failure JSON; retried after ``delay`` seconds unless attempts are used up), ``fail`` (failed
    for good), ``release`` (back to waiting, attempt not counted). ``token`` is the fencing
    token of the claim: an outcome with a stale token is rejected.
    """

    job_id: str
    token: int
    kind: str
    data: str = ""
    delay: float = 0.0


@dataclass
class StepRequest:
    """One worker step: report ``outcomes``, then claim up to ``claim`` jobs leased for
    ``lease`` seconds. With ``idle`` > 0 and fewer jobs than ``claim`` available, the worker is
    registered for ``idle`` seconds as ready for a direct hand-off (see
    :meth:`WorkerQueue.wait_for_jobs`). ``request_id`` identifies the request: sending it
    again (same id, same arguments) applies nothing and returns the same jobs."""

    worker_id: str
    request_id: str
    outcomes: Sequence[Outcome] = ()
    claim: int = 0
    lease: float = 30.0
    idle: float = 0.0


@dataclass
class StepResult:
    """Answer to a :class:`StepRequest`."""

    jobs: list[Job] = field(default_factory=list)
    """Jobs claimed for the worker (status active, ``token`` set)."""
    next_due: float | None = None
    """Seconds until the earliest delayed job is due or, when no job was claimed, a lease
    expires or a hand-off goes stale: the longest the worker may wait idle before its next
    step (None: nothing is due)."""
    recovered: int = 0
    """Expired leases moved back to waiting or failed by this step."""
    rejected: list[str] = field(default_factory=list)
    """Ids whose outcome was refused: the caller's token is stale."""
    more: bool = False
    """More jobs are waiting than were claimed."""
    throttled: float | None = None
    """Seconds until the queue's rate limit lets another job start, when it kept waiting jobs
    from being claimed (the worker sleeps that long instead of asking again); None: not
    limited."""


def new_request_id(worker_id: str, n: int) -> str:
    """A request id unique across workers and restarts: the worker id, a random part chosen
    per process, and the worker's request counter ``n``."""
    return f"{worker_id}:{_PROCESS_TOKEN}:{n}"


_PROCESS_TOKEN = os.urandom(4).hex()


def _new_process_token() -> None:
    global _PROCESS_TOKEN
    _PROCESS_TOKEN = os.urandom(4).hex()


os.register_at_fork(after_in_child=_new_process_token)


@runtime_checkable
class WorkerQueue(Protocol):
    """What a worker needs from a queue backend."""

    name: str

    async def worker_started(self, worker_id: str) -> None:
        """Prepare the queue for a worker (e.g. register its name); called once per run."""
        ...

    async def step(self, request: StepRequest) -> StepResult:
        """Apply the outcomes (fenced by token), recover expired leases, promote due delayed
        jobs, enforce retention, then claim up to ``request.claim`` jobs. Idempotent per
        ``request.request_id``."""
        ...

    async def extend_leases(
        self, worker_id: str, held: Sequence[tuple[str, int]], lease: float
    ) -> list[str]:
        """Renew the leases of ``held`` (id, token) to ``lease`` seconds from now; return the
        ids no longer held (stale token, cancelled, reclaimed)."""
        ...

    async def wait_for_jobs(self, worker_id: str, seconds: float) -> bool | Job:
        """Wait up to ``seconds`` for work: a :class:`Job` handed straight to this worker
        (already claimed for it: run it and report its outcome), True when woken because jobs
        may be runnable (step), False on timeout or interrupt."""
        ...

    async def wake_workers(self) -> None:
        """Pass a wake-up on to another waiting worker (one that may have room)."""
        ...

    async def interrupt_wait(self, worker_id: str) -> None:
        """End ``worker_id``'s pending :meth:`wait_for_jobs` early (it returns False)."""
        ...

    async def worker_stopped(self, worker_id: str) -> None:
        """The worker has stopped (after its last step): drop what the queue kept for it."""
        ...

    def spin_only_while(self, predicate: Callable[[], bool]) -> Callable[[], None]:
        """Let the backend busy-poll only while ``predicate()`` is true (the worker: while it
        runs no job); returns the function that lifts the condition."""
        ...

    def backoff_for(self, job: Job) -> Backoff:
        """The retry backoff of ``job`` (its own, else the queue's default)."""
        ...

    async def get_job(self, job_id: str) -> Job | None:
        """The job with ``job_id``, or None."""
        ...

    def worker_registry(self) -> WorkerRegistry | None:
        """Where the workers of this queue announce themselves (see
        :mod:`redkeep.queue.workers`), or None when the backend keeps no registry."""
        ...

    async def fire_schedules(self, worker_id: str) -> float:
        """One scheduling pass: enqueue the jobs of the queue's schedules that are due (each
        tick exactly once, whatever the number of workers); return the seconds until the next
        pass (a few seconds at most; see :mod:`redkeep.queue.schedules`)."""
        ...

    def schedules_changed(self) -> asyncio.Event:
        """An event set when this process next learns that the queue's schedules changed (a
        write here, or a wake-up from one elsewhere seen by :meth:`wait_for_jobs`): the
        worker then runs a scheduling pass at once."""
        ...
