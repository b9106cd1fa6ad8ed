"""Schedule storage of :class:`~redkeep.queue.memory.MemoryJobQueue`: the hooks of
:class:`~redkeep.queue.schedules.SchedulesMixin` over dicts, with the same claim and fire
rules as the Redis scripts (one event loop: each hook is atomic)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from redkeep.queue.job import encode_value
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
    from redkeep.queue.job import Job
    from redkeep.queue.prepare import _Prepared

__all__ = ["MemorySchedules"]


class MemorySchedules:
    """Mixin for :class:`~redkeep.queue.memory.MemoryJobQueue`."""

    name: str
    default_max_attempts: int

    if TYPE_CHECKING:

        async def _enqueue(self, prepared: list[_Prepared]) -> list[Job]: ...
        def _schedules_touched(self) -> None: ...

    def _sched_store(self) -> dict[str, Any]:
        store: dict[str, Any] | None = self.__dict__.get("_schedules")
        if store is None:
            store = self.__dict__["_schedules"] = {"defs": {}, "states": {}, "times": {}}
            store["pass"] = -1
        return store

    async def _server_ms(self) -> int:
        return round(time.time() * 1000)

    async def _sched_get(self, schedule_id: str) -> tuple[Schedule, State] | None:
        st = self._sched_store()
        definition, state = st["defs"].get(schedule_id), st["states"].get(schedule_id)
        if definition is None or state is None:
            return None
        return schedule_from(self.name, schedule_id, definition, state), State.decode(state)  # type: ignore[return-value]

    async def _sched_list(self) -> list[Schedule]:
        st = self._sched_store()
        return [schedule_from(self.name, i, d, st["states"][i]) for i, d in st["defs"].items()]

    async def _sched_write(
        self, schedule_id: str, expected: str, definition: str, state: State
    ) -> bool:
        st = self._sched_store()
        if st["states"].get(schedule_id, "") != expected:
            return False
        if definition == "-":
            for part in ("defs", "states", "times"):
                st[part].pop(schedule_id, None)
            return True
        if definition:
            st["defs"][schedule_id] = definition
        st["states"][schedule_id] = state.encode()
        self._sched_score(schedule_id, state)
        self._schedules_touched()  # the workers' passes (Redis: the marker's member "s")
        return True

    def _sched_score(self, schedule_id: str, state: State) -> None:
        times = self._sched_store()["times"]
        if state.paused or state.next_ms is None:
            times.pop(schedule_id, None)
        else:
            times[schedule_id] = state.next_ms

    async def _sched_delete(self, schedule_id: str) -> bool:
        found = self._sched_store()["states"].get(schedule_id)
        if found is None:
            return False
        return await self._sched_write(schedule_id, found, "-", State())

    async def _sched_claim(
        self, worker_id: str, request_id: str, limit: int
    ) -> tuple[list[Claimed], int, int | None, int | None]:
        st = self._sched_store()
        now = await self._server_ms()
        prev, st["pass"] = st["pass"], now
        horizon = now + LOOKAHEAD * 1000
        times: dict[str, int] = st["times"]
        due = sorted((t, i) for i, t in times.items() if t <= horizon)[:limit]
        claimed = []
        for _, sid in due:
            times[sid] = now + round(CLAIM_LEASE * 1000)
            state = State.decode(st["states"][sid]) or State()
            claimed.append(Claimed(decode_schedule(self.name, sid, st["defs"][sid], state), state))
        next_due = min(times.values(), default=None)
        return claimed, now, None if prev < 0 else prev, next_due

    async def _sched_fire(self, fires: list[Fire]) -> None:
        from redkeep.queue.prepare import _Prepared

        st = self._sched_store()
        for f in fires:
            sid = f.schedule.id
            if st["states"].get(sid) != f.expected.encode():
                continue
            opts = job_options(f.schedule, self.default_max_attempts)
            text = encode_value(f.schedule.payload, 2**62)
            prepared = [
                _Prepared(
                    job_id,
                    f.schedule.name,
                    text,
                    opts["priority"],
                    0,
                    run_at,
                    opts["max_attempts"],
                    opts["backoff"],
                    opts["timeout"],
                    f.schedule.payload,
                )
                for job_id, run_at in f.jobs
            ]
            if prepared:
                await self._enqueue(prepared)
            st["states"][sid] = f.new.encode()
            self._sched_score(sid, f.new)
