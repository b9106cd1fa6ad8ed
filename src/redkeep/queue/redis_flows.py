"""Flows of :class:`~redkeep.queue.redis.RedisJobQueue` (see :mod:`redkeep.queue.flows`): jobs
with parents are written by ``flow.lua`` (all or none); ``scripts/lib/flows.lua`` releases,
fails or cancels them when their parents finish, in the script that finishes the parent."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from redkeep.errors import BackendResponseError, InvalidJob
from redkeep.queue import scripts
from redkeep.queue.codec import decode_job, encode_data, flow_field
from redkeep.queue.job import Job, JobStatus

if TYPE_CHECKING:
    from redkeep.queue.base import _Prepared
    from redkeep.queue.keys import QueueKeys
    from redkeep.redis.base import RedisClient

__all__ = ["RedisFlows"]

_READ_CHUNK = 1000


class RedisFlows:
    """Mixin for :class:`~redkeep.queue.redis.RedisJobQueue`."""

    if TYPE_CHECKING:  # provided by RedisJobQueue
        name: str
        client: RedisClient
        keys: QueueKeys
        _opened: bool
        _loads: Any

        async def register(self) -> None: ...
        def _acknowledged(
            self, script: scripts.QueueScript, args: Sequence[Any]
        ) -> Awaitable[Any]: ...
        def _new_job(self, p: _Prepared, created_ms: int, status: JobStatus | None) -> Job: ...
        async def _jobs(self, ids: Sequence[str]) -> list[Job]: ...

    async def _enqueue_flow(self, prepared: list[_Prepared]) -> list[Job]:
        if not self._opened:
            await self.register()
        args: list[Any] = [len(prepared)]
        for p in prepared:
            mode = p.on_parent_failure or "fail"
            flow = flow_field(mode, p.parents) if p.parents else ""
            args += (
                p.id,
                f"{p.max_attempts}|{p.priority}|{p.delay_ms}|{p.run_at_ms}|{mode}|{len(p.parents)}",
                encode_data(p.id, p.name, p.timeout, p.backoff, p.payload, p.headers, "", flow),
                *p.parents,
            )
        try:
            created, statuses, found = await self._acknowledged(scripts.FLOW, args)
        except BackendResponseError as exc:
            text = str(exc)
            if "flow: " in text:
                raise InvalidJob(text.split("flow: ", 1)[1]) from None
            raise
        existing: dict[int, Job] = {}
        for i in range(0, len(found), 4):
            job = decode_job(self.name, str(found[i + 1]), found[i + 2], found[i + 3],
                             loads=self._loads)  # fmt: skip
            existing[int(found[i]) - 1] = job
        out: list[Job] = []
        reread: list[int] = []
        for k, p in enumerate(prepared):
            found_job = existing.get(k)
            if found_job is not None:
                job = found_job
            else:
                status = JobStatus(str(statuses[k]))
                job = self._new_job(p, int(created), status)
                if p.parents:
                    job = replace(job, depends_on=p.parents, on_parent_failure=p.on_parent_failure)
            if job.finished:
                reread.append(k)  # its result or error: not in the reply
            out.append(job)
        if reread:
            fresh = {j.id: j for j in await self._jobs([out[k].id for k in reread])}
            out = [fresh.get(j.id, j) for j in out]
        return out

    async def _with_parent_results(self, jobs: list[Job]) -> list[Job]:
        """``jobs`` with ``parent_results`` filled in for those with parents (one HMGET of the
        results hash per 1,000 parents)."""
        wanted = list(dict.fromkeys(p for j in jobs for p in j.depends_on))
        results: dict[str, Any] = {}
        for start in range(0, len(wanted), _READ_CHUNK):
            chunk = wanted[start : start + _READ_CHUNK]
            texts = await self.client.execute("HMGET", self.keys.results, *chunk)
            for parent, text in zip(chunk, texts or [], strict=False):
                results[parent] = self._loads(text) if text else None
        for job in jobs:
            if job.depends_on:
                # a Job built for this reply: set in place, as decode_job does
                job.__dict__["parent_results"] = {p: results.get(p) for p in job.depends_on}
        return jobs
