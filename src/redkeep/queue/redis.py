"""Durable job queue on Redis (RESP, Cluster) or Upstash REST: :class:`RedisJobQueue`, its
constructor, script calls, enqueue and the reads and admin hooks of a job.

Every state change is one Lua script from ``queue/scripts`` run by SHA, with every key it
touches in ``KEYS`` (layout 2, see :mod:`redkeep.queue.keys`; all keys of a queue share one
hash tag). The worker side (``step``, leases, the waits of idle workers) is in
:mod:`redkeep.queue.redis_step`; with ``min_replicas``, enqueues and worker steps return only
once that many replicas confirm them (``WAIT``; see :meth:`RedisJobQueue._acknowledged` and
:mod:`redkeep.queue.redis_replicas`). Events, schedules, limits, bulk operations and flows:
the other ``redis_*`` modules.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TYPE_CHECKING, Any, Unpack

import orjson

from redkeep.queue import scripts
from redkeep.queue.backoff import Backoff
from redkeep.queue.base import JobQueue, active_refusal
from redkeep.queue.codec import decode_job, encode_data, job_to_record
from redkeep.queue.dedup import dedup_options
from redkeep.queue.job import (
    FINISHED,
    NO_HEADERS,
    STATUSES,
    Job,
    JobStatus,
    make_job,
    serializer_for,
)
from redkeep.queue.keys import QueueKeys, registry_key
from redkeep.queue.options import QueueOptions, settings_options
from redkeep.queue.prepare import _Prepared
from redkeep.queue.redis_bulk import RedisBulk
from redkeep.queue.redis_events import RedisEvents
from redkeep.queue.redis_flows import RedisFlows
from redkeep.queue.redis_limits import RedisLimits
from redkeep.queue.redis_replicas import RedisReplicas, replicas_for
from redkeep.queue.redis_schedules import RedisSchedules
from redkeep.queue.redis_step import RedisStep
from redkeep.queue.upgrade import UPGRADE_CHECK_INTERVAL, has_layout1, upgrade_layout1
from redkeep.redis.base import RedisClient

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["RedisJobQueue", "list_queue_names"]

ENQUEUE_CHUNK = 1000
PAGE = 500


async def list_queue_names(client: RedisClient, key_prefix: str = "redkeep") -> list[str]:
    """Names of every queue that was used under ``key_prefix``."""
    names = await client.execute("SMEMBERS", registry_key(key_prefix))
    return sorted(str(n) for n in names or [])


class RedisJobQueue(
    RedisEvents,
    RedisSchedules,
    RedisLimits,
    RedisBulk,
    RedisFlows,
    RedisStep,
    RedisReplicas,
    JobQueue,
):
    """A job queue stored in Redis. The client is owned by the caller (not closed here)."""

    backend = "redis"

    def __init__(
        self,
        client: RedisClient,
        name: str = "default",
        *,
        key_prefix: str = "redkeep",
        poll_max_rate: float = 20.0,
        min_replicas: int = 0,
        replica_timeout: float = 1.0,
        **options: Unpack[QueueOptions],
    ) -> None:
        """``options``: attempts, backoff, retention and payload limit (:class:`QueueOptions`)."""
        super().__init__(name, **options)
        self.client = client
        self.min_replicas = replicas_for(client, min_replicas, replica_timeout)
        """Replicas that confirm each enqueue and worker step before it returns (0: none)."""
        self.replica_timeout = replica_timeout
        self.keys = QueueKeys(key_prefix, self.name)
        self.key_prefix = key_prefix
        self._opened = False
        self._next_upgrade_check = 0.0
        self._min_poll = 1.0 / poll_max_rate
        self._poll = self._min_poll
        r = self.retention
        self._retention_args = [
            int(r.completed_ttl * 1000),
            r.completed_max,
            int(r.failed_ttl * 1000),
            r.failed_max,
        ]
        # Each script's KEYS, from the names its header declares.
        self._k = {s.name: self.keys.names(s.keys) for s in _SCRIPTS}
        self._loads = serializer_for(self.max_payload_bytes).loads
        self._wait_keys: dict[str, list[str]] = {}
        self._siblings: dict[str, RedisJobQueue] = {}  # redis_flows.py

    @classmethod
    def from_settings(cls, client: RedisClient, name: str, settings: Settings) -> RedisJobQueue:
        """A queue configured from ``settings`` (key prefix, attempts, backoff, retention,
        replicas that confirm its writes)."""
        return cls(
            client,
            name,
            key_prefix=settings.key_prefix,
            **settings_options(settings),
            poll_max_rate=settings.queue_poll_max_rate,
            min_replicas=settings.queue_min_replicas,
            replica_timeout=settings.queue_replica_timeout,
        )

    async def register(self) -> None:
        """Record the queue name in the registry and convert a layout-1 queue (redkeep 0.1)
        found under the same name; once per instance, before its first operation."""
        if self._opened:
            return
        await self.client.execute("SADD", registry_key(self.key_prefix), self.name)
        if await has_layout1(self):
            await upgrade_layout1(self)
        self._opened = True
        self._next_upgrade_check = time.monotonic() + UPGRADE_CHECK_INTERVAL

    async def _recheck_layout1(self) -> None:
        """Every minute, workers convert jobs a redkeep 0.1 process may still be adding."""
        self._next_upgrade_check = time.monotonic() + UPGRADE_CHECK_INTERVAL
        if not self._opened:
            await self.register()
        elif await has_layout1(self):
            await upgrade_layout1(self)

    async def _run(self, script: scripts.QueueScript, args: Sequence[Any]) -> Any:
        if not self._opened:
            await self.register()
        return await self.client.evalsha(script, self._k[script.name], args)

    def _acknowledged(self, script: scripts.QueueScript, args: Sequence[Any]) -> Awaitable[Any]:
        """Run a script whose success the caller acknowledges to its user: enqueues and the
        worker steps that record completions. With ``min_replicas``, it returns only once
        ``WAIT`` confirms that many replicas have the write. (A plain function returning the
        awaitable: no coroutine layer on the hot path; callers have run :meth:`register`.)"""
        if not self.min_replicas:
            return self.client.evalsha(script, self._k[script.name], args)
        return self._replicated(script, args)

    # -- enqueue & inspect ---------------------------------------------------------------------
    @staticmethod
    def _job_args(p: _Prepared, out: list[Any]) -> None:
        out.append(p.id)
        opts = f"{p.max_attempts}|{p.priority}|{p.delay_ms}|{p.run_at_ms}"
        if p.group:
            opts += f"|g={p.group}"
        if p.dedup:
            opts += dedup_options(p)
        out.append(opts)
        out.append(encode_data(p.id, p.name, p.timeout, p.backoff, p.payload, p.headers, p.dedup))

    async def _enqueue(self, prepared: list[_Prepared]) -> list[Job]:
        if not self._opened:
            await self.register()
        out: list[Job] = []
        for start in range(0, len(prepared), ENQUEUE_CHUNK):
            chunk = prepared[start : start + ENQUEUE_CHUNK]
            args: list[Any] = [len(chunk)]
            for p in chunk:
                self._job_args(p, args)
            reply = await self._acknowledged(scripts.ENQUEUE, args)
            out += await self._enqueued(chunk, reply)
        return out

    async def _enqueue_one(self, prepared: _Prepared) -> Job:
        if not self._opened:
            await self.register()
        p = prepared
        data = encode_data(p.id, p.name, p.timeout, p.backoff, p.payload, p.headers, p.dedup)
        opts = f"{p.max_attempts}|{p.priority}|{p.delay_ms}|{p.run_at_ms}"
        if p.group:
            opts += f"|g={p.group}"
        if p.dedup:
            opts += dedup_options(p)
        reply = await self._acknowledged(scripts.ENQUEUE, [1, p.id, opts, data])
        if isinstance(reply, int):  # created_ms alone: a new job left waiting
            return self._new_job(p, reply, JobStatus.WAITING)
        return (await self._enqueued([p], reply))[0]

    async def _enqueued(self, chunk: list[_Prepared], reply: Any) -> list[Job]:
        """The Jobs for the enqueue script's reply (see enqueue.lua)."""
        if isinstance(reply, int):
            return [self._new_job(chunk[0], reply, JobStatus.WAITING)]
        created, handed, found = int(reply[0]), reply[1], reply[2]
        handed_at = {int(k) - 1 for k in handed}
        existing: dict[int, Job] = {}
        for i in range(0, len(found), 4):
            k = int(found[i]) - 1
            job_id = str(found[i + 1])
            job = decode_job(self.name, job_id, found[i + 2], found[i + 3], loads=self._loads)
            if job.status in FINISHED:  # its result and error: not read by the script
                job = (await self._jobs([job.id]) or [job])[0]
            existing[k] = job
        out = []
        for k, p in enumerate(chunk):
            found_job = existing.get(k)
            if found_job is None:
                status = JobStatus.ACTIVE if k in handed_at else None
                found_job = self._new_job(p, created, status)
            out.append(found_job)
        return out

    def _new_job(self, p: _Prepared, created_ms: int, status: JobStatus | None) -> Job:
        due = max(created_ms + p.delay_ms, p.run_at_ms)
        if status is None:
            status = JobStatus.DELAYED if due > created_ms else JobStatus.WAITING
        active = status is JobStatus.ACTIVE
        return make_job(
            id=p.id,
            name=p.name,
            queue=self.name,
            payload=p.value,
            status=status,
            priority=p.priority,
            max_attempts=p.max_attempts,
            created_at=created_ms / 1000.0,
            run_at=due / 1000.0,
            started_at=created_ms / 1000.0 if active else None,
            timeout=p.timeout,
            backoff=Backoff.from_list(orjson.loads(p.backoff)) if p.backoff else None,
            attempts=1 if active else 0,
            token=1 if active else 0,
            headers=orjson.loads(p.headers) if p.headers else NO_HEADERS,
            dedup_key=p.dedup or None,
            group=p.group or None,
        )

    async def _get(self, job_id: str) -> Job | None:
        jobs = await self._jobs([job_id])
        return jobs[0] if jobs else None

    async def _jobs(self, ids: Sequence[str]) -> list[Job]:
        jobs: list[Job] = []
        for start in range(0, len(ids), PAGE):
            flat = await self._run(scripts.READ, list(ids[start : start + PAGE]))
            jobs += [self._decode(str(flat[i]), flat, i + 1) for i in range(0, len(flat), 6)]
        return jobs

    def _decode(self, job_id: str, flat: list[Any], i: int) -> Job:
        """The job whose state, data, result, error and progress are ``flat[i:i + 5]``."""
        return decode_job(
            self.name, job_id, flat[i], flat[i + 1], flat[i + 2], flat[i + 3], self._loads,
            flat[i + 4],
        )  # fmt: skip

    async def _cancel(self, job_id: str, request_id: str) -> bool:
        return bool(await self._run(scripts.CANCEL, [request_id, job_id]))

    async def _retry(self, job_id: str, request_id: str) -> bool:
        return bool(await self._run(scripts.RETRY, [request_id, job_id]))

    async def _delete(self, job_id: str, request_id: str) -> bool:
        status = await self._run(scripts.DELETE, [request_id, job_id])
        if status == "active":
            raise active_refusal(job_id)
        return bool(status)

    async def _counts(self) -> dict[str, int]:
        if not self._opened:
            await self.register()
        replies = await self.client.pipeline([("ZCARD", self.keys.status_key(s)) for s in STATUSES])
        return {s: int(r) for s, r in zip(STATUSES, replies, strict=True)}

    async def _list(self, status: JobStatus, offset: int, limit: int) -> list[Job]:
        if not self._opened:
            await self.register()
        key = self.keys.status_key(status.value)
        cmd = "ZREVRANGE" if status in FINISHED else "ZRANGE"
        ids = await self.client.execute(cmd, key, offset, offset + limit - 1)
        return await self._jobs([str(i) for i in ids or []])

    async def _purge(self, status: JobStatus) -> int:
        total = 0
        while True:
            n = int(await self._run(scripts.PURGE, [self._request_id(), status.value, PAGE]))
            total += n
            if n == 0:
                return total

    async def dump_jobs(self) -> AsyncIterator[Job]:
        """Every job, status by status, in pages of 500."""
        if not self._opened:
            await self.register()
        for status in STATUSES:
            key = self.keys.status_key(status)
            offset = 0
            while True:
                ids = await self.client.zrange(key, offset, offset + PAGE - 1)
                for job in await self._jobs([str(i) for i in ids]):
                    yield job
                if len(ids) < PAGE:
                    break
                offset += PAGE

    async def _restore(self, job: Job, request_id: str) -> bool:
        state, data, result, error = job_to_record(
            job, serializer_for(self.max_payload_bytes).dumps
        )
        args = [request_id, job.id, state, data, result, error]
        return bool(await self._run(scripts.RESTORE, args))


_SCRIPTS = [
    scripts.ENQUEUE, scripts.STEP, scripts.EXTEND, scripts.CANCEL, scripts.RETRY, scripts.PURGE,
    scripts.RESTORE, scripts.READ, scripts.DELETE, scripts.ACK, scripts.PROGRESS, scripts.PAUSE,
    scripts.JOB_EVENTS, scripts.SCHEDULE_WRITE, scripts.SCHEDULE_CLAIM, scripts.SCHEDULE_FIRE,
    scripts.BULK, scripts.LIMITS, scripts.FLOW, scripts.FLOW_LINK, scripts.FLOW_RELAY,
]  # fmt: skip
