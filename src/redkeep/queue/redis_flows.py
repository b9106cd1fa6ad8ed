"""Flows of :class:`~redkeep.queue.redis.RedisJobQueue` (see :mod:`redkeep.queue.flows`): jobs
with parents are written by ``flow.lua`` (all or none); ``scripts/lib/flows.lua`` releases,
fails or cancels them when their parents finish, in the script that finishes the parent."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from redkeep.errors import BackendResponseError, InvalidJob
from redkeep.queue import scripts
from redkeep.queue.codec import decode_job, encode_data, flow_field
from redkeep.queue.flows import proxy_id
from redkeep.queue.job import Job, JobStatus

if TYPE_CHECKING:
    from redkeep.queue.backoff import Backoff
    from redkeep.queue.job import RetentionPolicy
    from redkeep.queue.keys import QueueKeys
    from redkeep.queue.prepare import _Prepared
    from redkeep.queue.redis import RedisJobQueue
    from redkeep.redis.base import RedisClient

__all__ = ["RELAY_BATCH", "RedisFlows"]

_READ_CHUNK = 1000
RELAY_BATCH = 200
"""Outflow entries relayed per step (a step whose reply says more are left relays again)."""


class RedisFlows:
    """Mixin for :class:`~redkeep.queue.redis.RedisJobQueue`."""

    _siblings: dict[str, RedisJobQueue]

    if TYPE_CHECKING:  # provided by RedisJobQueue
        name: str
        client: RedisClient
        keys: QueueKeys
        key_prefix: str
        default_max_attempts: int
        default_backoff: Backoff
        retention: RetentionPolicy
        max_payload_bytes: int
        _opened: bool
        _loads: Any

        async def _run(self, script: scripts.QueueScript, args: Sequence[Any]) -> Any: ...

        async def register(self) -> None: ...
        def _acknowledged(
            self, script: scripts.QueueScript, args: Sequence[Any]
        ) -> Awaitable[Any]: ...
        def _new_job(self, p: _Prepared, created_ms: int, status: JobStatus | None) -> Job: ...
        async def _jobs(self, ids: Sequence[str]) -> list[Job]: ...

    def sibling(self, name: str) -> RedisJobQueue:
        """The queue ``name`` on the same client and key prefix (flows across queues)."""
        from redkeep.queue.redis import RedisJobQueue

        if name == self.name and isinstance(self, RedisJobQueue):
            return self
        found = self._siblings.get(name)
        if found is None:
            found = self._siblings[name] = RedisJobQueue(
                self.client, name, key_prefix=self.key_prefix,
                max_attempts=self.default_max_attempts, backoff=self.default_backoff,
                retention=self.retention, max_payload_bytes=self.max_payload_bytes,
            )  # fmt: skip
        return found

    async def _link_foreign(self, prepared: list[_Prepared]) -> list[Any]:
        """Link the parents of other queues to their proxies here (flow_link.lua on each of
        those queues); the proxies' arguments for flow.lua: id, status, result, error."""
        wanted: dict[str, dict[str, None]] = {}
        for p in prepared:
            for queue, job_id in p.foreign:
                wanted.setdefault(queue, {})[job_id] = None
        args: list[Any] = []
        for queue, ids in wanted.items():
            other = self.sibling(queue)
            reply = await other._run(scripts.FLOW_LINK, [self.name, *ids])
            if reply and reply[0] == "missing":
                child = next(p.id for p in prepared if (queue, str(reply[1])) in p.foreign)
                raise InvalidJob(f"job {child} depends on unknown job {reply[1]} of queue {queue}")
            for k, job_id in enumerate(ids):
                status, result, error = reply[3 * k : 3 * k + 3]
                args += (proxy_id(queue, job_id), status, result or "", error or "")
        return args

    async def _enqueue_flow(self, prepared: list[_Prepared]) -> list[Job]:
        if not self._opened:
            await self.register()
        proxies = await self._link_foreign(prepared) if any(p.foreign for p in prepared) else []
        args: list[Any] = [len(prepared), len(proxies) // 4, *proxies]
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

    async def _relay_flows(self) -> None:
        """Relay the outcomes of this queue's parents to their proxies in other queues
        (``outflow``, written by lib/flows.lua): flow_relay.lua on each child queue, then the
        relayed entries are removed. Safe to run by several workers at once: relaying an
        entry twice changes nothing."""
        entries = await self.client.execute("LRANGE", self.keys.outflow, 0, RELAY_BATCH - 1)
        if not entries:
            return
        by_queue: dict[str, list[Any]] = {}
        for raw in entries:
            try:
                queue, job_id, status, result, error = orjson.loads(raw)
            except (orjson.JSONDecodeError, ValueError, TypeError):
                continue  # not one of ours: dropped below
            by_queue.setdefault(str(queue), []).extend((job_id, status, result or "", error or ""))
        for queue, args in by_queue.items():
            await self.sibling(queue)._run(scripts.FLOW_RELAY, [self.name, *args])
        await self.client.pipeline([("LREM", self.keys.outflow, 1, raw) for raw in entries])

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
