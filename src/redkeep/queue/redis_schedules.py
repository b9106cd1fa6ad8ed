"""Schedule storage of :class:`~redkeep.queue.redis.RedisJobQueue`: the hooks of
:class:`~redkeep.queue.schedules.SchedulesMixin` over ``schedule_write.lua``,
``schedule_claim.lua`` and ``schedule_fire.lua`` (keys ``schedules``, ``schedstate``,
``schedtimes``, ``schedclaims``: see :mod:`redkeep.queue.keys`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redkeep.queue import scripts
from redkeep.queue.codec import encode_data
from redkeep.queue.schedule_model import (
    CLAIM_LEASE,
    LOOKAHEAD,
    Claimed,
    Fire,
    Schedule,
    State,
    decode_schedule,
    job_options,
    schedule_from,
)

if TYPE_CHECKING:
    from redkeep.queue.keys import QueueKeys
    from redkeep.redis.base import RedisClient

__all__ = ["RedisSchedules"]


class RedisSchedules:
    """Mixin for :class:`~redkeep.queue.redis.RedisJobQueue`."""

    client: RedisClient
    keys: QueueKeys
    name: str
    default_max_attempts: int

    if TYPE_CHECKING:  # provided by RedisJobQueue

        async def _run(self, script: scripts.QueueScript, args: Sequence[Any]) -> Any: ...
        async def register(self) -> None: ...

    async def _server_ms(self) -> int:
        return round(await self.client.time() * 1000)

    async def _sched_get(self, schedule_id: str) -> tuple[Schedule, State] | None:
        await self.register()
        definition = await self.client.hget(self.keys.schedules, schedule_id)
        state = State.decode(await self.client.hget(self.keys.schedstate, schedule_id))
        if definition is None or state is None:
            return None
        s = schedule_from(self.name, schedule_id, definition, state.encode())
        return s, state

    async def _sched_list(self) -> list[Schedule]:
        await self.register()
        defs = await self.client.hgetall(self.keys.schedules)
        states = await self.client.hgetall(self.keys.schedstate)
        return [
            schedule_from(self.name, sid, d, states[sid])
            for sid, d in defs.items()
            if sid in states
        ]

    async def _sched_write(
        self, schedule_id: str, expected: str, definition: str, state: State
    ) -> bool:
        score = "" if state.paused or state.next_ms is None else state.next_ms
        args = [schedule_id, expected, definition, state.encode(), score]
        return bool(await self._run(scripts.SCHEDULE_WRITE, args))

    async def _sched_delete(self, schedule_id: str) -> bool:
        for _ in range(20):
            found = await self._sched_get(schedule_id)
            if found is None:
                return False
            args = [schedule_id, found[1].encode(), "-", "", ""]
            if await self._run(scripts.SCHEDULE_WRITE, args):
                return True
        return False

    async def _sched_claim(
        self, worker_id: str, request_id: str, limit: int
    ) -> tuple[list[Claimed], int, int | None, int | None]:
        args = [worker_id, request_id, limit, int(CLAIM_LEASE * 1000), int(LOOKAHEAD * 1000)]
        now, prev, flat, next_due = await self._run(scripts.SCHEDULE_CLAIM, args)
        now, prev = int(now), int(prev)
        claimed = []
        for i in range(0, len(flat), 3):
            state = State.decode(str(flat[i + 2])) or State()
            s = decode_schedule(self.name, str(flat[i]), str(flat[i + 1]), state)
            claimed.append(Claimed(s, state))
        nd = int(next_due)
        return claimed, now, None if prev < 0 else prev, None if nd < 0 else nd

    async def _sched_fire(self, fires: list[Fire]) -> None:
        args: list[Any] = [len(fires)]
        for f in fires:
            s = f.schedule
            score = "" if f.new.paused or f.new.next_ms is None else f.new.next_ms
            args += (s.id, f.expected.encode(), f.new.encode(), score, len(f.jobs))
            opts = job_options(s, self.default_max_attempts)
            payload = _payload_text(s)
            for job_id, run_at in f.jobs:
                args += (
                    job_id,
                    f"{opts['max_attempts']}|{opts['priority']}|{run_at}",
                    encode_data(job_id, s.name, opts["timeout"], opts["backoff"], payload),
                )
        await self._run(scripts.SCHEDULE_FIRE, args)


def _payload_text(s: Schedule) -> str:
    from redkeep.queue.job import encode_value

    return encode_value(s.payload, 2**62)
