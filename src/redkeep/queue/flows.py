"""Workflows: job dependencies, chains and groups (fan-out / fan-in). See docs/flows.md.

A job enqueued with ``depends_on=[ids]`` has status ``blocked`` until every parent has
completed; it then waits (or stays delayed until its ``run_at``) like any job, and its handler
reads ``job.parent_results`` (parent id -> result). A parent that fails for good or is
cancelled applies the child's ``on_parent_failure``: ``fail`` (the default: the child fails
with a ``ParentFailed`` error naming the parent), ``cancel``, or ``ignore`` (the parent counts
as done, its result None); a child failed or cancelled that way does the same to its own
children, down the whole flow.

Parents are jobs of the same queue that exist when the child is written (or come earlier in
the same call), so a cycle cannot be built. :meth:`FlowsMixin.chain` and
:meth:`FlowsMixin.group` write a whole flow in one atomic call (one Lua script on Redis): every
job or none. On Redis, the change of a parent and the release of its children happen in the
same script (the worker step that records the parent's outcome), so a crash can neither lose a
release nor run a child twice; retention keeps a finished parent (and its result) while one of
its children is unfinished.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from redkeep.errors import InvalidJob
from redkeep.queue.job import MAX_JOB_ID, MAX_PARENTS, PARENT_MODES, Job, JobSpec, new_job_id

if TYPE_CHECKING:
    from redkeep.queue.base import _Prepared

__all__ = ["Flow", "FlowsMixin", "flow_options"]


@dataclass(frozen=True)
class Flow:
    """The jobs of a flow written by :meth:`FlowsMixin.chain` or :meth:`FlowsMixin.group`, in
    the order given (a group's ``then`` job last)."""

    jobs: list[Job]
    queue: FlowsMixin

    @property
    def ids(self) -> list[str]:
        return [j.id for j in self.jobs]

    @property
    def last(self) -> Job:
        """The job that runs last: a chain's last step, a group's ``then`` job."""
        return self.jobs[-1]

    async def wait(self, timeout: float | None = None) -> Job:  # noqa: ASYNC109
        """The last job once it is finished (see :meth:`~redkeep.queue.events.EventsMixin.wait`):
        completed, or failed/cancelled by its parents."""
        waited: Job = await self.queue.wait(self.last.id, timeout)  # type: ignore[attr-defined]
        return waited


def flow_options(spec: JobSpec) -> tuple[tuple[str, ...], str]:
    """The checked parent ids (order kept, repeats dropped) and ``on_parent_failure`` of
    ``spec`` (``()`` and ``""`` for a job without parents)."""
    parents = spec.depends_on
    mode = spec.on_parent_failure
    if mode not in PARENT_MODES:
        modes = ", ".join(PARENT_MODES)
        raise InvalidJob(f"on_parent_failure must be one of {modes}, got {mode!r}")
    if parents is None:
        return (), ""
    if isinstance(parents, str) or not isinstance(parents, Sequence | set | frozenset):
        raise InvalidJob("depends_on must be a list of job ids")
    out: dict[str, None] = {}
    for parent in parents:
        if not isinstance(parent, str) or not 0 < len(parent) <= MAX_JOB_ID:
            raise InvalidJob(
                f"depends_on: {str(parent)[:40]!r} is not a job id (a non-empty str of at most "
                f"{MAX_JOB_ID} characters)"
            )
        out[parent] = None
    if len(out) > MAX_PARENTS:
        raise InvalidJob(f"a job has at most {MAX_PARENTS} parents, got {len(out)}")
    if not out:
        return (), ""
    return tuple(out), mode


class FlowsMixin:
    """``chain`` and ``group`` over a backend's ``_enqueue_flow`` hook (which also writes the
    jobs that :meth:`~redkeep.queue.base.JobQueue.enqueue` gets with ``depends_on``)."""

    async def chain(self, *specs: JobSpec) -> Flow:
        """Write ``specs`` as a chain, atomically: each job depends on the previous one (and on
        its own ``depends_on``, if any), so they run one after the other and each reads the
        previous result in ``job.parent_results``. One invalid spec writes nothing
        (:class:`~redkeep.errors.InvalidJob` naming it)."""
        if not specs:
            raise InvalidJob("a chain needs at least one job")
        linked: list[JobSpec] = []
        previous: str | None = None
        for spec in specs:
            spec = _with_id(spec)
            if previous is not None:
                spec = replace(spec, depends_on=[previous, *(spec.depends_on or ())])
            linked.append(spec)
            previous = spec.job_id
        return Flow(await self._write_flow(linked), self)

    async def group(self, specs: Iterable[JobSpec], *, then: JobSpec | None = None) -> Flow:
        """Write ``specs`` (run in parallel) and, when given, ``then``, which depends on all of
        them and runs once after they completed, with every result in
        ``job.parent_results``; atomically, as :meth:`chain`."""
        members = [_with_id(s) for s in specs]
        if not members:
            raise InvalidJob("a group needs at least one job")
        if then is not None:
            ids = [str(s.job_id) for s in members]
            members.append(replace(then, depends_on=[*ids, *(then.depends_on or ())]))
        return Flow(await self._write_flow(members), self)

    async def _write_flow(self, specs: list[JobSpec]) -> list[Job]:
        prepared = []
        for index, spec in enumerate(specs):
            try:
                prepared.append(self._prepare(spec))  # type: ignore[attr-defined]
            except InvalidJob as exc:
                raise InvalidJob(f"job {index}: {exc}") from None
        return await self._enqueue_flow(prepared)

    @abstractmethod
    async def _enqueue_flow(self, prepared: list[_Prepared]) -> list[Job]:
        """Write ``prepared`` (some with parents) atomically: all or none; an unknown parent
        raises :class:`~redkeep.errors.InvalidJob`. A job whose id exists is returned as is."""


def _with_id(spec: JobSpec) -> JobSpec:
    if not isinstance(spec, JobSpec):
        raise InvalidJob(f"a flow is made of JobSpec, got {type(spec).__name__}")
    return spec if spec.job_id is not None else replace(spec, job_id=new_job_id())
