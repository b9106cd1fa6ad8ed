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
from redkeep.names import is_valid_name
from redkeep.queue.job import MAX_JOB_ID, MAX_PARENTS, PARENT_MODES, Job, JobSpec, new_job_id

if TYPE_CHECKING:
    from redkeep.queue.prepare import _Prepared

__all__ = ["Flow", "FlowsMixin", "flow_options", "proxy_id"]


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
        queue = self.queue.sibling(self.last.queue)
        waited: Job = await queue.wait(self.last.id, timeout)  # type: ignore[attr-defined]
        return waited


def proxy_id(queue: str, job_id: str) -> str:
    """The id, in a child's queue, of the proxy of parent ``job_id`` of another ``queue``."""
    return f"{queue}/{job_id}"


def flow_options(
    spec: JobSpec, queue: str
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], str]:
    """The checked parents of ``spec`` for a job of ``queue``: local ids (order kept, repeats
    dropped; a parent of another queue named by its proxy id ``<queue>/<id>``), the parents of
    other queues as (queue, id), and ``on_parent_failure`` (``""`` without parents)."""
    parents = spec.depends_on
    mode = spec.on_parent_failure
    if mode not in PARENT_MODES:
        modes = ", ".join(PARENT_MODES)
        raise InvalidJob(f"on_parent_failure must be one of {modes}, got {mode!r}")
    if parents is None:
        return (), (), ""
    if isinstance(parents, str) or not isinstance(parents, Sequence | set | frozenset):
        raise InvalidJob("depends_on must be a list of job ids")
    out: dict[str, None] = {}
    foreign: dict[tuple[str, str], None] = {}
    for parent in parents:
        where, job_id = queue, parent
        if isinstance(parent, Job):
            where, job_id = parent.queue, parent.id
        elif isinstance(parent, tuple) and len(parent) == 2:
            where, job_id = parent
            if not isinstance(where, str) or not is_valid_name(where):
                raise InvalidJob(f"depends_on: {str(where)[:40]!r} is not a queue name")
        if not isinstance(job_id, str) or not 0 < len(job_id) <= MAX_JOB_ID:
            raise InvalidJob(
                f"depends_on: {str(job_id)[:40]!r} is not a job id (a non-empty str of at most "
                f"{MAX_JOB_ID} characters, a Job or a (queue, id) pair)"
            )
        if where == queue:
            out[job_id] = None
        else:
            foreign[(where, job_id)] = None
            out[proxy_id(where, job_id)] = None
    if len(out) > MAX_PARENTS:
        raise InvalidJob(f"a job has at most {MAX_PARENTS} parents, got {len(out)}")
    if not out:
        return (), (), ""
    return tuple(out), tuple(foreign), mode


class FlowsMixin:
    """``chain`` and ``group`` over a backend's ``_enqueue_flow`` hook (which also writes the
    jobs that :meth:`~redkeep.queue.base.JobQueue.enqueue` gets with ``depends_on``)."""

    async def chain(self, *specs: JobSpec) -> Flow:
        """Write ``specs`` as a chain: each job depends on the previous one (and on its own
        ``depends_on``, if any), so they run one after the other and each reads the previous
        result in ``job.parent_results``. Atomic within one queue: one invalid spec writes
        nothing (:class:`~redkeep.errors.InvalidJob` naming it). A spec with ``queue`` set
        runs in that queue (see docs/flows.md, "Across queues")."""
        if not specs:
            raise InvalidJob("a chain needs at least one job")
        linked: list[JobSpec] = []
        previous: JobSpec | None = None
        for spec in specs:
            spec = self._placed(spec)
            if previous is not None:
                spec = replace(spec, depends_on=[_ref(previous, spec), *(spec.depends_on or ())])
            linked.append(spec)
            previous = spec
        return Flow(await self._write_flow(linked), self)

    async def group(self, specs: Iterable[JobSpec], *, then: JobSpec | None = None) -> Flow:
        """Write ``specs`` (run in parallel) and, when given, ``then``, which depends on all of
        them and runs once after they completed, with every result in
        ``job.parent_results``; atomically within one queue, as :meth:`chain`."""
        members = [self._placed(s) for s in specs]
        if not members:
            raise InvalidJob("a group needs at least one job")
        if then is not None:
            then = self._placed(then)
            refs = [_ref(m, then) for m in members]
            members.append(replace(then, depends_on=[*refs, *(then.depends_on or ())]))
        return Flow(await self._write_flow(members), self)

    def _placed(self, spec: JobSpec) -> JobSpec:
        """``spec`` with its job id and its queue chosen."""
        if not isinstance(spec, JobSpec):
            raise InvalidJob(f"a flow is made of JobSpec, got {type(spec).__name__}")
        name: str = self.name  # type: ignore[attr-defined]
        return replace(spec, job_id=spec.job_id or new_job_id(), queue=spec.queue or name)

    async def _write_flow(self, specs: list[JobSpec]) -> list[Job]:
        """Prepare every spec on its queue, then write: one call for a one-queue flow; else one
        call per run of consecutive jobs of one queue, in order (parents first)."""
        segments: list[tuple[FlowsMixin, list[_Prepared]]] = []
        for index, spec in enumerate(specs):
            target = self if spec.queue == self.name else self.sibling(str(spec.queue))  # type: ignore[attr-defined]
            try:
                prepared = target._prepare(spec)  # type: ignore[attr-defined]
            except InvalidJob as exc:
                raise InvalidJob(f"job {index}: {exc}") from None
            if segments and segments[-1][0] is target:
                segments[-1][1].append(prepared)
            else:
                segments.append((target, [prepared]))
        for target, prepared_list in segments:
            await target._check_foreign(prepared_list, {s.job_id for s in specs})
        jobs: list[Job] = []
        for target, prepared_list in segments:
            jobs += await target._enqueue_flow(prepared_list)
        return jobs

    async def _check_foreign(self, prepared: list[_Prepared], in_flow: set[str | None]) -> None:
        """InvalidJob, before anything is written, for a parent of another queue that is
        neither in the flow nor stored."""
        for p in prepared:
            for queue, job_id in p.foreign:
                if job_id in in_flow:
                    continue
                if await self.sibling(queue).get_job(job_id) is None:  # type: ignore[attr-defined]
                    raise InvalidJob(f"job {p.id} depends on unknown job {job_id} of queue {queue}")

    def sibling(self, name: str) -> FlowsMixin:
        """The queue ``name`` on the same store as this one (same client and key prefix)."""
        if name == getattr(self, "name", None):
            return self
        raise InvalidJob(f"this backend has no queue {name!r} next to this one")

    @abstractmethod
    async def _enqueue_flow(self, prepared: list[_Prepared]) -> list[Job]:
        """Write ``prepared`` (some with parents) atomically: all or none; an unknown parent
        raises :class:`~redkeep.errors.InvalidJob`. A job whose id exists is returned as is."""


def _ref(parent: JobSpec, child: JobSpec) -> str | tuple[str, str]:
    """How ``child`` names ``parent`` in its ``depends_on`` (both placed)."""
    if parent.queue == child.queue:
        return str(parent.job_id)
    return (str(parent.queue), str(parent.job_id))
