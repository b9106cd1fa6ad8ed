"""Writes confirmed by replicas for :class:`~redkeep.queue.redis.RedisJobQueue`: with
``min_replicas``, enqueues and the worker steps that record outcomes return only once ``WAIT``
confirms that many replicas have them (:meth:`RedisJobQueue._acknowledged
<redkeep.queue.redis.RedisJobQueue._acknowledged>` picks this path); a timeout raises
:class:`~redkeep.errors.ReplicationTimeout` naming the jobs and what to do. Refused where
``WAIT`` cannot run (Cluster, Upstash REST)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redkeep.errors import ConfigError, ReplicationTimeout
from redkeep.queue import scripts

if TYPE_CHECKING:
    from redkeep.redis.base import RedisClient

__all__ = ["RedisReplicas", "replicas_for"]


class RedisReplicas:
    """Mixin for :class:`~redkeep.queue.redis.RedisJobQueue`."""

    name: str
    client: RedisClient
    min_replicas: int
    replica_timeout: float
    _k: dict[str, list[str]]

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


def replicas_for(client: RedisClient, n: int, timeout: float) -> int:
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
