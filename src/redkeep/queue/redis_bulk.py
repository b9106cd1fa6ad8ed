"""Bulk operations of :class:`~redkeep.queue.redis.RedisJobQueue`: the ``_bulk`` hook of
:class:`~redkeep.queue.bulk.BulkMixin` over ``bulk.lua`` (one script call per batch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redkeep.queue import scripts
from redkeep.queue.job import JobStatus

__all__ = ["RedisBulk"]


class RedisBulk:
    """Mixin for :class:`~redkeep.queue.redis.RedisJobQueue`."""

    if TYPE_CHECKING:  # provided by RedisJobQueue

        async def _run(self, script: scripts.QueueScript, args: Sequence[Any]) -> Any: ...

    async def _bulk(
        self,
        op: str,
        status: JobStatus,
        name: str | None,
        offset: int,
        scan: int,
        room: int,
        request_id: str,
    ) -> tuple[int, int]:
        args = [request_id, op, status.value, name or "", offset, scan, room]
        changed, looked = await self._run(scripts.BULK, args)
        return int(changed), int(looked)
