"""The blocking job-queue API: :class:`SyncQueue`, one :class:`~redkeep.queue.base.JobQueue`
driven through a :class:`~redkeep.sync.runner.LoopRunner`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redkeep.queue.base import JobQueue
from redkeep.queue.job import Job, JobSpec, JobStatus
from redkeep.queue.limits import GroupLimit, RateLimit
from redkeep.sync._bound import Bound

__all__ = ["SyncQueue"]


class SyncQueue(Bound[JobQueue]):
    """Blocking twin of the producer side of :class:`~redkeep.queue.base.JobQueue`: same
    arguments, same errors. Thread-safe; get one from :meth:`redkeep.sync.SyncServices.queue`.
    Jobs are run by an ordinary (async) worker process: ``redkeep worker``."""

    _kind = "queue"

    def enqueue(self, name: str, payload: Any = None, **options: Any) -> Job:
        """Add a job. ``options`` are those of :meth:`JobQueue.enqueue
        <redkeep.queue.base.JobQueue.enqueue>` (``job_id``, ``priority``, ``delay``,
        ``run_at``, ``max_attempts``, ``backoff``, ``timeout``, ``headers``, ``dedup_key``,
        ``dedup_ttl``, ``debounce``, ``group``); with ``job_id`` or a live ``dedup_key``, the
        existing job is returned."""
        runner, aio = self._bound()
        return runner.run(aio.enqueue(name, payload, **options))

    def enqueue_many(self, specs: Iterable[JobSpec]) -> list[Job]:
        """Enqueue several jobs in a few round trips; every spec is validated first."""
        runner, aio = self._bound()
        return runner.run(aio.enqueue_many(list(specs)))

    def get_job(self, job_id: str) -> Job | None:
        """The job with ``job_id``, or None."""
        runner, aio = self._bound()
        return runner.run(aio.get_job(job_id))

    def cancel(self, job_id: str) -> bool:
        """Cancel a waiting, delayed or active job; False when it is finished or unknown."""
        runner, aio = self._bound()
        return runner.run(aio.cancel(job_id))

    def retry(self, job_id: str) -> bool:
        """Move a failed job back to waiting with its attempts reset; False if not failed."""
        runner, aio = self._bound()
        return runner.run(aio.retry(job_id))

    def delete_job(self, job_id: str) -> bool:
        """Delete a job that is not active; False when there is no such job."""
        runner, aio = self._bound()
        return runner.run(aio.delete_job(job_id))

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job is finished (completed, failed for good or cancelled) and
        return it; :class:`~redkeep.errors.JobNotFound` for an unknown id, the built-in
        :class:`TimeoutError` when ``timeout`` seconds pass first (see
        :meth:`JobQueue.wait <redkeep.queue.base.JobQueue.wait>`)."""
        runner, aio = self._bound()
        return runner.run(aio.wait(job_id, timeout))

    def counts(self) -> dict[str, int]:
        """Number of jobs per status."""
        runner, aio = self._bound()
        return runner.run(aio.counts())

    def list_jobs(self, status: JobStatus | str, offset: int = 0, limit: int = 100) -> list[Job]:
        """Jobs of ``status``: waiting in run order, delayed by run_at, finished newest first."""
        runner, aio = self._bound()
        return runner.run(aio.list_jobs(status, offset, limit))

    def purge(self, status: JobStatus | str) -> int:
        """Delete every job of a finished ``status``; returns how many were deleted."""
        runner, aio = self._bound()
        return runner.run(aio.purge(status))

    def retry_failed(self, name: str | None = None, limit: int | None = None) -> int:
        """Move failed jobs (of handler ``name``, at most ``limit``) back to waiting, in
        batches; returns how many (:meth:`JobQueue.retry_failed
        <redkeep.queue.bulk.BulkMixin.retry_failed>`)."""
        runner, aio = self._bound()
        return runner.run(aio.retry_failed(name, limit))

    def cancel_waiting(self, name: str | None = None, limit: int | None = None) -> int:
        """Cancel waiting and delayed jobs (of handler ``name``, at most ``limit``), in
        batches; returns how many."""
        runner, aio = self._bound()
        return runner.run(aio.cancel_waiting(name, limit))

    def pause(self) -> None:
        """Stop every worker from claiming this queue's jobs until :meth:`resume`."""
        runner, aio = self._bound()
        runner.run(aio.pause())

    def resume(self) -> None:
        """Let workers claim again."""
        runner, aio = self._bound()
        runner.run(aio.resume())

    def is_paused(self) -> bool:
        """Whether the queue is paused."""
        runner, aio = self._bound()
        return runner.run(aio.is_paused())

    def set_rate_limit(
        self, max_jobs: int | None, per_seconds: float | None = None
    ) -> RateLimit | None:
        """At most ``max_jobs`` job starts in any window of ``per_seconds`` (None removes
        it; :meth:`JobQueue.set_rate_limit
        <redkeep.queue.limits.FlowControlMixin.set_rate_limit>`)."""
        runner, aio = self._bound()
        return runner.run(aio.set_rate_limit(max_jobs, per_seconds))

    def get_rate_limit(self) -> RateLimit | None:
        """The queue's rate limit, or None."""
        runner, aio = self._bound()
        return runner.run(aio.get_rate_limit())

    def set_group_limit(
        self,
        concurrency: int | None = None,
        max_jobs: int | None = None,
        per_seconds: float | None = None,
    ) -> GroupLimit | None:
        """The limit of every group of the queue (all None removes it; :meth:`JobQueue.
        set_group_limit <redkeep.queue.limits.FlowControlMixin.set_group_limit>`)."""
        runner, aio = self._bound()
        return runner.run(aio.set_group_limit(concurrency, max_jobs, per_seconds))

    def get_group_limit(self) -> GroupLimit | None:
        """The queue's group limit, or None."""
        runner, aio = self._bound()
        return runner.run(aio.get_group_limit())

    def chain(self, *specs: JobSpec) -> list[Job]:
        """Write a chain (each job after the previous one, see docs/flows.md); returns its
        jobs in order (:meth:`JobQueue.chain <redkeep.queue.flows.FlowsMixin.chain>`)."""
        runner, aio = self._bound()
        return runner.run(aio.chain(*specs)).jobs

    def group(self, specs: Iterable[JobSpec], then: JobSpec | None = None) -> list[Job]:
        """Write a group and its ``then`` job (fan-out, fan-in, see docs/flows.md); returns
        its jobs, ``then`` last."""
        runner, aio = self._bound()
        return runner.run(aio.group(list(specs), then=then)).jobs

    def __repr__(self) -> str:
        return f"SyncQueue({self.name!r})"
