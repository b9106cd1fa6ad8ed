"""Durable job queue on Redis (RESP, Cluster) or Upstash REST.

Every state change is one Lua script from ``queue/scripts`` run by SHA, with every key it
touches in ``KEYS`` (layout 2, see :mod:`redkeep.queue.keys`; all keys of a queue share one
hash tag). Idle workers block on BZPOPMIN over the hand-off set, the wake-up marker and their
own wake key where the transport supports blocking commands, and poll adaptively (bounded by
``poll_max_rate``) where it does not. With ``min_replicas``, enqueues and worker steps return
only once that many replicas confirm them (``WAIT``; see :meth:`RedisJobQueue._acknowledged`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from redkeep.errors import ConfigError, ReplicationTimeout
from redkeep.queue import scripts
from redkeep.queue.backoff import Backoff
from redkeep.queue.base import JobQueue, _Prepared, active_refusal, settings_options
from redkeep.queue.codec import decode_job, encode_data, job_to_record, split_data
from redkeep.queue.dedup import dedup_options
from redkeep.queue.job import (
    FINISHED,
    NO_HEADERS,
    STATUSES,
    Job,
    JobStatus,
    RetentionPolicy,
    make_job,
    serializer_for,
)
from redkeep.queue.keys import QueueKeys, registry_key
from redkeep.queue.protocol import StepRequest, StepResult
from redkeep.queue.redis_bulk import RedisBulk
from redkeep.queue.redis_events import RedisEvents
from redkeep.queue.redis_flows import RedisFlows
from redkeep.queue.redis_limits import RedisLimits
from redkeep.queue.redis_schedules import RedisSchedules
from redkeep.queue.upgrade import UPGRADE_CHECK_INTERVAL, has_layout1, upgrade_layout1
from redkeep.queue.workers import RedisWorkerRegistry, WorkerRegistry
from redkeep.redis.base import RedisClient

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["RedisJobQueue", "list_queue_names"]

ENQUEUE_CHUNK = 1000
BATCH = 100
PAGE = 500
MAX_BLOCK = 1.0
HANDOFF_TTL = 2.0  # seconds after which a hand-off no idle worker took waits again
_STATUS = {s.value: s for s in JobStatus}


async def list_queue_names(client: RedisClient, key_prefix: str = "redkeep") -> list[str]:
    """Names of every queue that was used under ``key_prefix``."""
    names = await client.execute("SMEMBERS", registry_key(key_prefix))
    return sorted(str(n) for n in names or [])


class RedisJobQueue(RedisEvents, RedisSchedules, RedisLimits, RedisBulk, RedisFlows, JobQueue):
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
        min_replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> None:
        super().__init__(
            name,
            max_attempts=max_attempts,
            backoff=backoff,
            retention=retention,
            max_payload_bytes=max_payload_bytes,
        )
        self.client = client
        self.min_replicas = _replicas_for(client, min_replicas, replica_timeout)
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
        self._loads = serializer_for(max_payload_bytes).loads
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

    async def _replicated(self, script: scripts.QueueScript, args: Sequence[Any]) -> Any:
        """EVALSHA + WAIT on a connection of their own; a timeout names the jobs.

        Since Redis 7.2, WAIT counts from its connection's last *write*: a call whose script
        wrote nothing (a re-send finding its work done) would be confirmed at once, on a new
        connection, even though its first run may not have reached a replica. So the step
        script re-writes its memo when it answers a re-sent request, and an enqueue that found
        every job already there is followed by a confirmed write of its own (ack.lua).
        """
        n, wait = self.min_replicas, self.replica_timeout
        try:
            reply = await self.client.evalsha(
                script, self._k[script.name], args, replicas=n, replica_timeout=wait
            )
            if script.name == "enqueue" and _wrote_nothing(reply, int(args[0])):
                await self.client.evalsha(
                    scripts.ACK, self._k["ack"], [], replicas=n, replica_timeout=wait
                )
        except ReplicationTimeout as exc:
            raise self._not_replicated(script, args, exc) from None
        return reply

    def _not_replicated(
        self, script: scripts.QueueScript, args: Sequence[Any], exc: ReplicationTimeout
    ) -> ReplicationTimeout:
        settings = (
            f"REDKEEP_QUEUE_MIN_REPLICAS={self.min_replicas}, "
            f"REDKEEP_QUEUE_REPLICA_TIMEOUT={self.replica_timeout:g}"
        )
        ids: tuple[str, ...] = ()
        if script.name == "flow":
            message = (
                f"queue {self.name!r}: a flow's enqueue was confirmed by {exc.acknowledged} of "
                f"{exc.required} replica(s) within {self.replica_timeout:g} s ({settings}); "
                "enqueue it again with the same job ids (safe: existing ids are returned)"
            )
        elif script.name == "enqueue":
            ids = tuple(str(i) for i in args[1::3])
            what = f"job {ids[0]!r}" if len(ids) == 1 else f"{len(ids)} jobs ({_first(ids)})"
            message = (
                f"queue {self.name!r}: the enqueue of {what} was confirmed by "
                f"{exc.acknowledged} of {exc.required} replica(s) within "
                f"{self.replica_timeout:g} s ({settings}). It is on the primary and may be "
                "lost if the primary fails now: enqueue again with the same job id(s) (safe: "
                "an existing id is returned, not added twice)"
            )
        else:
            ids = tuple(str(i) for i in args[11::5])
            message = (
                f"queue {self.name!r}: worker step {args[1]!r} reporting {len(ids)} "
                f"outcome(s) was confirmed by {exc.acknowledged} of {exc.required} replica(s) "
                f"within {self.replica_timeout:g} s ({settings}); the worker sends the same "
                "step again (its request id makes that safe)"
            )
        return ReplicationTimeout(message, exc.acknowledged, exc.required, job_ids=ids)

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

    # -- worker protocol -------------------------------------------------------------------------
    async def worker_started(self, worker_id: str) -> None:
        """Register the queue name (and convert a layout-1 queue); drop a stale interrupt."""
        await self.register()
        await self.client.delete(self.keys.wake(worker_id))

    async def step(self, request: StepRequest) -> StepResult:
        """One step script call (see step.lua); a re-sent request returns the same jobs."""
        if time.monotonic() >= self._next_upgrade_check:
            await self._recheck_layout1()
        idle = request.idle if self.client.capabilities.blocking else 0.0
        args: list[Any] = [
            request.worker_id, request.request_id, request.claim, int(request.lease * 1000),
            *self._retention_args, BATCH, int(idle * 1000), int(HANDOFF_TTL * 1000),
        ]  # fmt: skip
        for o in request.outcomes:
            args += (o.job_id, o.token, o.kind, o.data, int(o.delay * 1000))
        if not self._opened:
            await self.register()
        reply = await self._acknowledged(scripts.STEP, args)
        flat, next_due, recovered, rejected, more, throttle = reply[:6]
        loads = self._loads
        jobs = [
            decode_job(self.name, str(flat[i]), flat[i + 1], flat[i + 2], None, flat[i + 3], loads)
            for i in range(0, len(flat), 4)
        ]
        if jobs and any(j.depends_on for j in jobs):
            jobs = await self._with_parent_results(jobs)
        if len(reply) > 6 and reply[6]:
            await self._relay_flows()  # flows across queues (redis_flows.py)
        nd = int(next_due)
        self._poll = self._min_poll if jobs or int(more) else min(self._poll * 2, MAX_BLOCK)
        return StepResult(
            jobs=jobs,
            next_due=None if nd < 0 else nd / 1000.0,
            recovered=int(recovered),
            rejected=[str(r) for r in rejected or []],
            more=bool(int(more)),
            throttled=None if int(throttle) < 0 else int(throttle) / 1000.0,
        )

    async def _recheck_layout1(self) -> None:
        """Every minute, workers convert jobs a redkeep 0.1 process may still be adding."""
        self._next_upgrade_check = time.monotonic() + UPGRADE_CHECK_INTERVAL
        if not self._opened:
            await self.register()
        elif await has_layout1(self):
            await upgrade_layout1(self)

    async def extend_leases(
        self, worker_id: str, held: Sequence[tuple[str, int]], lease: float
    ) -> list[str]:
        """Renew leases (extend.lua); a handed-off job gets ``worker_id`` as its worker."""
        if not held:
            return []
        args: list[Any] = [worker_id, int(lease * 1000)]
        for job_id, token in held:
            args += (job_id, token)
        lost = await self._run(scripts.EXTEND, args)
        return [str(i) for i in lost or []]

    async def wait_for_jobs(self, worker_id: str, seconds: float) -> bool | Job:
        """BZPOPMIN over the hand-off set, the marker and the worker's wake key (in that
        order), again while the client waited less than ``seconds``; polling with an adaptive
        interval where blocking commands are missing. The marker's member ``s`` (a schedule
        was written) sets :meth:`schedules_changed` and the wait goes on."""
        if self.client.capabilities.blocking:
            keys = self._wait_keys.get(worker_id)
            if keys is None:
                k = self.keys
                keys = self._wait_keys[worker_id] = [k.handoff, k.marker, k.wake(worker_id)]
            deadline = time.monotonic() + seconds
            while True:
                left = deadline - time.monotonic()
                popped = await self.client.bzpopmin(keys, max(0.01, left))
                if popped is None:
                    if deadline - time.monotonic() > 0.01:
                        continue  # the transport caps a blocking wait (RESP: 0.8 x timeout)
                    return False
                if popped[0] == keys[0]:
                    return self._handed(popped[1], worker_id)
                if popped[0] == keys[2]:
                    return False
                if popped[1] != "s":
                    return True
                self._schedules_touched()
        # No blocking commands (Upstash REST): sleep with an adaptive interval, never polling
        # faster than poll_max_rate.
        await asyncio.sleep(max(self._min_poll, min(self._poll, seconds)))
        return False

    def _handed(self, member: str, worker_id: str) -> Job:
        """The job of a hand-off member (``<state>\\n<data>``), claimed for its popper (whose id
        the state gets when it renews the lease or reports the outcome)."""
        state, _, data = member.partition("\n")
        if state.endswith("|"):  # the worker field, last, is empty until then
            state += worker_id
        try:
            job_id = str(split_data(data)[0][0])
        except (ValueError, IndexError, orjson.JSONDecodeError):
            job_id = ""
        return decode_job(self.name, job_id, state, data, loads=self._loads)

    async def wake_workers(self) -> None:
        await self.client.zadd(self.keys.marker, {"w": 0})

    async def interrupt_wait(self, worker_id: str) -> None:
        await self.client.zadd(self.keys.wake(worker_id), {"stop": 0})

    async def worker_stopped(self, worker_id: str) -> None:
        await self.client.delete(self.keys.wake(worker_id))
        self._wait_keys.pop(worker_id, None)

    def spin_only_while(self, predicate: Callable[[], bool]) -> Callable[[], None]:
        return self.client.spin_only_while(predicate)

    def worker_registry(self) -> WorkerRegistry:
        """The registry of every worker under this queue's key prefix."""
        return RedisWorkerRegistry(self.client, self.key_prefix)


def _replicas_for(client: RedisClient, n: int, timeout: float) -> int:
    """``n``, or :class:`ConfigError` where WAIT cannot run (Cluster, Upstash REST)."""
    if n < 0 or timeout <= 0:
        raise ConfigError("min_replicas must be >= 0 and replica_timeout > 0")
    if n and (client.capabilities.cluster or client.transport == "upstash"):
        where = "Upstash REST" if client.transport == "upstash" else "Redis Cluster"
        reason = f"writes confirmed by replicas (WAIT) are not available on {where}: use 0"
        raise ConfigError(
            f"REDKEEP_QUEUE_MIN_REPLICAS (min_replicas={n}): {reason}",
            {"REDKEEP_QUEUE_MIN_REPLICAS": reason},
        )
    return n


def _wrote_nothing(reply: Any, n: int) -> bool:
    """True when the enqueue script found all its ``n`` jobs already there (and wrote none)."""
    return not isinstance(reply, int) and len(reply[2]) == 4 * n


def _first(ids: Sequence[str], shown: int = 3) -> str:
    listed = ", ".join(repr(i) for i in ids[:shown])
    return listed + (", ..." if len(ids) > shown else "")


_SCRIPTS = [
    scripts.ENQUEUE, scripts.STEP, scripts.EXTEND, scripts.CANCEL, scripts.RETRY, scripts.PURGE,
    scripts.RESTORE, scripts.READ, scripts.DELETE, scripts.ACK, scripts.PROGRESS, scripts.PAUSE,
    scripts.JOB_EVENTS, scripts.SCHEDULE_WRITE, scripts.SCHEDULE_CLAIM, scripts.SCHEDULE_FIRE,
    scripts.BULK, scripts.LIMITS, scripts.FLOW, scripts.FLOW_LINK, scripts.FLOW_RELAY,
]  # fmt: skip
