"""The worker side of :class:`~redkeep.queue.redis.RedisJobQueue` (the
:class:`~redkeep.queue.protocol.WorkerQueue` protocol): one ``step`` script call applies
outcomes, recovers expired leases, promotes due delayed jobs and claims (see ``step.lua``);
lease renewal, and the waits of idle workers: BZPOPMIN over the hand-off set, the wake-up
marker and the worker's own wake key where the transport supports blocking commands, an
adaptive poll (bounded by ``poll_max_rate``) where it does not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from redkeep.queue import scripts
from redkeep.queue.codec import decode_job, split_data
from redkeep.queue.job import Job
from redkeep.queue.protocol import StepRequest, StepResult
from redkeep.queue.workers import RedisWorkerRegistry, WorkerRegistry

if TYPE_CHECKING:
    from redkeep.queue.keys import QueueKeys
    from redkeep.redis.base import RedisClient

__all__ = ["HANDOFF_TTL", "RedisStep"]

BATCH = 100
MAX_BLOCK = 1.0
HANDOFF_TTL = 2.0  # seconds after which a hand-off no idle worker took waits again


class RedisStep:
    """Mixin for :class:`~redkeep.queue.redis.RedisJobQueue`."""

    name: str
    client: RedisClient
    keys: QueueKeys
    key_prefix: str
    _opened: bool
    _next_upgrade_check: float
    _min_poll: float
    _poll: float
    _retention_args: list[int]
    _loads: Callable[[str | bytes], Any]
    _wait_keys: dict[str, list[str]]

    if TYPE_CHECKING:  # provided by RedisJobQueue and its other mixins

        async def register(self) -> None: ...
        async def _recheck_layout1(self) -> None: ...
        def _acknowledged(
            self, script: scripts.QueueScript, args: Sequence[Any]
        ) -> Awaitable[Any]: ...
        async def _run(self, script: scripts.QueueScript, args: Sequence[Any]) -> Any: ...
        async def _with_parent_results(self, jobs: list[Job]) -> list[Job]: ...
        async def _relay_flows(self) -> None: ...
        def _schedules_touched(self) -> None: ...

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
