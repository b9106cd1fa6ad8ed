"""Durable job queue on Redis (RESP, Cluster) or Upstash REST.

Every state change is one Lua script from ``queue/scripts`` run by SHA; all keys of a queue share
one hash tag (see :mod:`redkeep.queue.keys`). Idle workers block on BZPOPMIN over a marker key
where the transport supports blocking commands, and poll adaptively (bounded by
``poll_max_rate``) where it does not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from redkeep.queue import scripts
from redkeep.queue.backoff import Backoff
from redkeep.queue.base import JobQueue, _Prepared
from redkeep.queue.codec import hash_to_job, job_to_hash, pairs_to_dict
from redkeep.queue.job import (
    FINISHED,
    STORED,
    Job,
    JobStatus,
    Outcome,
    RetentionPolicy,
    StepResult,
    make_job,
)
from redkeep.queue.keys import QueueKeys, registry_key
from redkeep.redis.base import RedisClient

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["RedisJobQueue", "list_queue_names"]

ENQUEUE_CHUNK = 1000
BATCH = 100
PAGE = 500
MAX_BLOCK = 1.0
STOP = "[]"


async def list_queue_names(client: RedisClient, key_prefix: str = "redkeep") -> list[str]:
    """Names of every queue that was used under ``key_prefix``."""
    names = await client.execute("SMEMBERS", registry_key(key_prefix))
    return sorted(str(n) for n in names or [])


class RedisJobQueue(JobQueue):
    """A job queue stored in Redis. The client is owned by the caller (not closed here)."""

    backend = "redis"

    def __init__(
        self,
        client: RedisClient,
        name: str = "default",
        *,
        key_prefix: str = "redkeep",
        max_attempts: int = 3,
        backoff: Backoff | None = None,
        retention: RetentionPolicy | None = None,
        max_payload_bytes: int = 4 * 1024 * 1024,
        poll_max_rate: float = 20.0,
    ) -> None:
        super().__init__(
            name,
            max_attempts=max_attempts,
            backoff=backoff,
            retention=retention,
            max_payload_bytes=max_payload_bytes,
        )
        self.client = client
        self.keys = QueueKeys(key_prefix, self.name)
        self.key_prefix = key_prefix
        self._registered = False
        self._min_poll = 1.0 / poll_max_rate
        self._poll = self._min_poll
        r = self.retention
        self._retention_args = [
            int(r.completed_ttl * 1000),
            r.completed_max,
            int(r.failed_ttl * 1000),
            r.failed_max,
        ]
        k = self.keys
        self._step_keys = [
            k.waiting,
            k.delayed,
            k.active,
            k.completed,
            k.failed,
            k.cancelled,
            k.marker,
            k.seq,
            k.idle,
            k.idle_room,
        ]
        # Hot scripts get one routing key and derive the others (same hash tag) from the base:
        # fewer arguments for the client to encode on every call.
        self._route = [k.waiting]
        self._base = k.base
        self._inboxes: dict[str, str] = {}

    @classmethod
    def from_settings(cls, client: RedisClient, name: str, settings: Settings) -> RedisJobQueue:
        """A queue configured from ``settings`` (key prefix, attempts, backoff, retention)."""
        return cls(
            client,
            name,
            key_prefix=settings.key_prefix,
            max_attempts=settings.queue_max_attempts,
            backoff=Backoff(settings.queue_backoff_base, settings.queue_backoff_max),
            retention=RetentionPolicy(
                settings.queue_completed_ttl,
                settings.queue_completed_max,
                settings.queue_failed_ttl,
                settings.queue_failed_max,
            ),
            max_payload_bytes=settings.max_payload_bytes,
            poll_max_rate=settings.queue_poll_max_rate,
        )

    async def register(self) -> None:
        """Record the queue name in the registry (once per instance)."""
        if not self._registered:
            await self.client.execute("SADD", registry_key(self.key_prefix), self.name)
            self._registered = True

    # -- enqueue & inspect ---------------------------------------------------------------------
    async def _enqueue(self, prepared: list[_Prepared]) -> list[Job]:
        if not self._registered:
            await self.register()
        out: list[Job] = []
        for start in range(0, len(prepared), ENQUEUE_CHUNK):
            chunk = prepared[start : start + ENQUEUE_CHUNK]
            # One JSON argument instead of 9 per job: far cheaper for the client to send.
            packed = orjson.dumps([
                [p.id, p.name, p.payload, p.priority, p.delay_ms, p.run_at_ms, p.max_attempts,
                 p.backoff, "" if p.timeout is None else str(p.timeout), p.check]
                for p in chunk
            ]).decode()  # fmt: skip
            replies = await self.client.evalsha(scripts.ENQUEUE, self._route, [self._base, packed])
            for p, reply in zip(chunk, replies, strict=True):
                out.append(self._enqueued(p, reply))
        return out

    async def _enqueue_one(self, prepared: _Prepared) -> Job:
        # One job as plain arguments (the script decodes no JSON); the optional ones only
        # when one of them is not the default.
        if not self._registered:
            await self.register()
        p = prepared
        args: list[Any] = [self._base, p.id, p.name, p.payload, p.max_attempts]
        if p.priority or p.check or p.delay_ms or p.run_at_ms or p.backoff or p.timeout is not None:
            args += [
                p.priority, p.check, p.delay_ms, p.run_at_ms, p.backoff,
                "" if p.timeout is None else str(p.timeout),
            ]  # fmt: skip
        reply = await self.client.evalsha(scripts.ENQUEUE, self._route, args)
        if not isinstance(reply, list):  # created_ms alone: a new job left waiting
            reply = [0, reply, "waiting", reply]
        return self._enqueued(p, reply)

    def _enqueued(self, p: _Prepared, reply: list[Any]) -> Job:
        """The Job for one entry of the enqueue script's reply."""
        if int(reply[0]) == 1:
            return hash_to_job(self.name, pairs_to_dict(reply[1:]))[0]
        active = reply[2] == "active"
        return make_job(
            id=p.id,
            name=p.name,
            queue=self.name,
            payload=p.value,
            status=_STATUS[reply[2]],
            priority=p.priority,
            max_attempts=p.max_attempts,
            created_at=int(reply[1]) / 1000.0,
            run_at=int(reply[3]) / 1000.0,
            timeout=p.timeout,
            backoff=_backoff(p.backoff),
            attempts=1 if active else 0,
            token=1 if active else 0,
        )

    async def _get(self, job_id: str) -> Job | None:
        h = await self.client.hgetall(self.keys.job(job_id))
        return hash_to_job(self.name, h)[0] if h else None

    async def _jobs(self, ids: Sequence[str]) -> list[Job]:
        if not ids:
            return []
        replies = await self.client.pipeline([("HGETALL", self.keys.job(i)) for i in ids])
        jobs = []
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
            h = _as_dict(reply)
            if h:
                jobs.append(hash_to_job(self.name, h)[0])
        return jobs

    async def _cancel(self, job_id: str) -> bool:
        k = self.keys
        prev = await self.client.evalsha(
            scripts.CANCEL, [k.waiting, k.delayed, k.active, k.cancelled], [k.job_prefix, job_id]
        )
        return bool(prev)

    async def _retry(self, job_id: str) -> bool:
        k = self.keys
        moved = await self.client.evalsha(
            scripts.RETRY, [k.failed, k.waiting, k.marker, k.seq], [k.job_prefix, job_id]
        )
        return bool(moved)

    async def _counts(self) -> dict[str, int]:
        replies = await self.client.pipeline(
            [("ZCARD", self.keys.status_key(s.value)) for s in STORED]
        )
        return {s.value: int(r) for s, r in zip(STORED, replies, strict=True)}

    async def _list(self, status: JobStatus, offset: int, limit: int) -> list[Job]:
        key = self.keys.status_key(status.value)
        cmd = "ZREVRANGE" if status in FINISHED else "ZRANGE"
        ids = await self.client.execute(cmd, key, offset, offset + limit - 1)
        return await self._jobs([str(i) for i in ids or []])

    async def _purge(self, status: JobStatus) -> int:
        k = self.keys
        total = 0
        while True:
            n = int(
                await self.client.evalsha(
                    scripts.PURGE, [k.status_key(status.value)], [k.job_prefix, PAGE]
                )
            )
            total += n
            if n == 0:
                return total

    async def dump_jobs(self) -> AsyncIterator[Job]:
        """Every job, status by status, in pages of 500."""
        for status in STORED:
            key = self.keys.status_key(status.value)
            offset = 0
            while True:
                ids = await self.client.zrange(key, offset, offset + PAGE - 1)
                for job in await self._jobs([str(i) for i in ids]):
                    yield job
                if len(ids) < PAGE:
                    break
                offset += PAGE

    async def _restore(self, job: Job) -> bool:
        if not self._registered:
            await self.register()
        k = self.keys
        args: list[Any] = [k.job_prefix, job.id]
        for field, value in job_to_hash(job, self.max_payload_bytes).items():
            args += [field, value]
        return bool(await self.client.evalsha(scripts.RESTORE, self._step_keys, args))

    # -- worker hooks --------------------------------------------------------------------------
    async def _step(
        self,
        worker_id: str,
        outcomes: Sequence[Outcome],
        claim: int,
        lease: float,
        idle: float = 0.0,
    ) -> StepResult:
        if not self.client.capabilities.blocking:
            idle = 0.0  # pollers cannot receive hand-offs while they sleep
        args: list[Any] = [
            self._base, worker_id, claim, int(lease * 1000), *self._retention_args,
            BATCH, int(idle * 1000),
            orjson.dumps(
                [[o.job_id, o.token, o.kind, o.data, int(o.delay * 1000)] for o in outcomes]
            ).decode(),
        ]  # fmt: skip
        reply = await self.client.evalsha(scripts.STEP, self._route, args)
        claimed, next_due, recovered, rejected, more = reply
        jobs = []
        for flat in claimed:
            jobs.append(hash_to_job(self.name, pairs_to_dict(flat))[0])
        nd = int(next_due)
        self._poll = self._min_poll if jobs or int(more) else min(self._poll * 2, MAX_BLOCK)
        return StepResult(
            jobs=jobs,
            next_due=None if nd < 0 else nd / 1000.0,
            recovered=int(recovered),
            rejected=[str(r) for r in rejected],
            more=bool(int(more)),
        )

    async def _extend(
        self, worker_id: str, held: Sequence[tuple[str, int]], lease: float
    ) -> list[str]:
        if not held:
            return []
        args: list[Any] = [self.keys.job_prefix, int(lease * 1000)]
        for job_id, token in held:
            args += [job_id, token]
        lost = await self.client.evalsha(scripts.EXTEND, [self.keys.active], args)
        return [str(i) for i in lost or []]

    async def _wait(self, seconds: float, worker_id: str = "") -> bool | Job:
        if self.client.capabilities.blocking:
            inbox = self._inboxes.get(worker_id)
            if inbox is None:
                inbox = self._inboxes[worker_id] = self.keys.inbox(worker_id)
            popped = await self.client.bzpopmin([inbox, self.keys.marker], max(0.01, seconds))
            if popped is None:
                return False
            if popped[0] == inbox:
                if popped[1] == STOP:
                    return False
                # A job handed over by an enqueue: already claimed for this worker.
                return hash_to_job(self.name, pairs_to_dict(orjson.loads(popped[1])))[0]
            return True
        # No blocking commands (Upstash REST): sleep with an adaptive interval, never polling
        # faster than poll_max_rate.
        await asyncio.sleep(max(self._min_poll, min(self._poll, seconds)))
        return False

    def _spin_only_while(self, predicate: Callable[[], bool]) -> Callable[[], None]:
        return self.client.spin_only_while(predicate)

    async def _wake(self) -> None:
        await self.client.zadd(self.keys.marker, {"w": 0})

    async def _interrupt(self, worker_id: str) -> None:
        # An empty JSON list: ends the worker's pop; the step script skips and deletes it.
        await self.client.zadd(self.keys.inbox(worker_id), {STOP: 0})


_STATUS = {s.value: s for s in JobStatus}


def _backoff(text: str) -> Backoff | None:
    return Backoff.from_list(orjson.loads(text)) if text else None


def _as_dict(reply: Any) -> dict[str, str]:
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    return pairs_to_dict(reply or [])
