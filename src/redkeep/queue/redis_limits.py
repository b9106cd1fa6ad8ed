"""Flow control of :class:`~redkeep.queue.redis.RedisJobQueue`: the hooks of
:class:`~redkeep.queue.limits.FlowControlMixin`. The paused flag is the ``paused`` field of the
queue's ``meta`` hash (see :mod:`redkeep.queue.keys`), read by ``step.lua`` with every claim and
by ``enqueue.lua`` before a hand-off; ``pause.lua`` sets or clears it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redkeep.queue import scripts

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
