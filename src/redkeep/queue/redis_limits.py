"""Flow control of :class:`~redkeep.queue.redis.RedisJobQueue`: the hooks of
:class:`~redkeep.queue.limits.FlowControlMixin`. The paused flag, the rate limit and the group
limit are the ``paused``, ``rate`` and ``glimit`` fields of the queue's ``meta`` hash (see
:mod:`redkeep.queue.keys`), read by ``step.lua`` with every claim and by ``enqueue.lua`` before
a hand-off; ``pause.lua`` and ``limits.lua`` write them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redkeep.queue import scripts
from redkeep.queue.limits import GroupLimit, RateLimit

if TYPE_CHECKING:
    from redkeep.queue.keys import QueueKeys
    from redkeep.redis.base import RedisClient

__all__ = ["RedisLimits"]

BATCH = 1000


class RedisLimits:
    """Mixin for :class:`~redkeep.queue.redis.RedisJobQueue`."""

    client: RedisClient
    keys: QueueKeys

    if TYPE_CHECKING:  # provided by RedisJobQueue

        async def _run(self, script: scripts.QueueScript, args: Sequence[Any]) -> Any: ...
        async def register(self) -> None: ...

    async def _set_paused(self, paused: bool) -> None:
        await self._run(scripts.PAUSE, ["1" if paused else "0", BATCH])

    async def _is_paused(self) -> bool:
        await self.register()
        return await self.client.hget(self.keys.meta, "paused") == "1"

    async def _set_rate_limit(self, limit: RateLimit | None) -> None:
        value = "" if limit is None else f"{limit.max_jobs}|{limit.per_ms}"
        await self._run(scripts.LIMITS, ["rate", value, BATCH])

    async def _get_rate_limit(self) -> RateLimit | None:
        await self.register()
        return _parse_rate(await self.client.hget(self.keys.meta, "rate"))

    async def _set_group_limit(self, limit: GroupLimit | None) -> None:
        value = ""
        if limit is not None:
            r = limit.rate
            value = f"{limit.concurrency or 0}|{r.max_jobs if r else 0}|{r.per_ms if r else 0}"
        await self._run(scripts.LIMITS, ["glimit", value, BATCH])

    async def _get_group_limit(self) -> GroupLimit | None:
        await self.register()
        return _parse_group(await self.client.hget(self.keys.meta, "glimit"))


def _parse_group(value: str | None) -> GroupLimit | None:
    if not value:
        return None
    conc, max_jobs, per_ms = (int(v) for v in value.split("|"))
    rate = RateLimit(max_jobs, per_ms / 1000.0) if max_jobs else None
    return GroupLimit(conc or None, rate)


def _parse_rate(value: str | None) -> RateLimit | None:
    if not value:
        return None
    max_jobs, _, per_ms = value.partition("|")
    return RateLimit(int(max_jobs), int(per_ms) / 1000.0)
