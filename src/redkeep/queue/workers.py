"""The worker registry: which workers are alive, where, on which queues, doing how much.

A running :class:`~redkeep.queue.worker.Worker` registers when it starts, sends heartbeats from
its lease-renewal loop (never holding it up: every :data:`HEARTBEAT_INTERVAL` seconds, every
:data:`BUSY_INTERVAL` seconds while its job counts change) and leaves when it stops. An entry
whose heartbeats stop (a killed process, a lost network) expires after :data:`HEARTBEAT_TTL`
seconds by itself. The dashboard's Workers page, ``redkeep workers`` and ``GET /v1/workers``
read it with :func:`registry_of`.

A worker finds its registries through the worker protocol: each queue's
:meth:`~redkeep.queue.protocol.WorkerQueue.worker_registry`. On Redis the registry of a key
prefix is two fixed keys (:class:`~redkeep.queue.keys.WorkerKeys`: a zset of heartbeat expiries
and a hash of JSON records) written by one script with the server's clock; on the memory
backend it lives in the process, attached to the queue objects the workers serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from typing_extensions import TypedDict  # pydantic reads it on Python 3.11

from redkeep.errors import scrub
from redkeep.queue import scripts
from redkeep.queue.keys import WorkerKeys

if TYPE_CHECKING:
    from redkeep.queue.protocol import WorkerQueue
    from redkeep.redis.base import RedisClient

__all__ = [
    "BUSY_INTERVAL",
    "HEARTBEAT_INTERVAL",
    "HEARTBEAT_TTL",
    "MemoryWorkerRegistry",
    "RedisWorkerRegistry",
    "WorkerPresence",
    "WorkerRegistry",
    "WorkerView",
    "registries_for",
    "registry_of",
]

log = logging.getLogger("redkeep.queue.workers")

HEARTBEAT_INTERVAL = 5.0
"""Seconds between two heartbeats of an idle worker."""
BUSY_INTERVAL = 1.0
"""Seconds between two heartbeats of a worker whose active or processed count changed."""
HEARTBEAT_TTL = 20.0
"""Seconds after its last heartbeat when a worker is no longer listed (four missed beats)."""
MAX_LISTED = 1000
"""Most workers one listing returns."""


class WorkerView(TypedDict):
    """One registered worker. Times are seconds since the epoch (Redis: the server's clock)."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    active: int
    processed: int
    started_at: float
    last_heartbeat: float


class _Described(Protocol):
    """What the registry reads from a worker (see :class:`~redkeep.queue.worker.Worker`)."""

    id: str
    queues: list[WorkerQueue]
    concurrency: int
    processed: int

    @property
    def active(self) -> int: ...


class WorkerRegistry(ABC):
    """Where workers announce themselves; one per Redis key prefix, or per process on memory."""

    @property
    @abstractmethod
    def scope(self) -> Hashable:
        """Equal for two registries that are the same store (a worker beats once into it)."""

    @abstractmethod
    async def beat(
        self,
        worker_id: str,
        fields: Mapping[str, Any],
        ttl: float,
        started_at: float | None = None,
    ) -> float:
        """Record a heartbeat of ``worker_id`` with its ``fields`` (host, pid, queues,
        concurrency, active, processed), valid ``ttl`` seconds. Returns ``started_at``: the
        one given, else the time of the worker's first heartbeat."""

    @abstractmethod
    async def remove(self, worker_id: str) -> None:
        """Forget ``worker_id`` (it stopped)."""

    @abstractmethod
    async def list(self) -> list[WorkerView]:
        """The workers whose last heartbeat has not expired, by id."""


class RedisWorkerRegistry(WorkerRegistry):
    """The registry of the workers under ``key_prefix`` on a Redis (or Upstash) backend."""

    def __init__(self, client: RedisClient, key_prefix: str) -> None:
        self.client = client
        self.keys = WorkerKeys(key_prefix)
        self._k = self.keys.names(scripts.WORKER_BEAT.keys)

    @property
    def scope(self) -> Hashable:
        return (id(self.client), self.keys.key_prefix)

    async def beat(
        self,
        worker_id: str,
        fields: Mapping[str, Any],
        ttl: float,
        started_at: float | None = None,
    ) -> float:
        started = "" if started_at is None else int(started_at * 1000)
        record = orjson.dumps(dict(fields)).decode()
        args = [worker_id, int(ttl * 1000), record, started]
        reply = await self.client.evalsha(scripts.WORKER_BEAT, self._k, args)
        return int(reply[0]) / 1000.0

    async def remove(self, worker_id: str) -> None:
        await self.client.pipeline(
            [("ZREM", self.keys.beats, worker_id), ("HDEL", self.keys.info, worker_id)]
        )

    async def list(self) -> list[WorkerView]:
        flat = await self.client.evalsha(scripts.WORKER_LIST, self._k, [MAX_LISTED]) or []
        views = [_view(str(flat[i]), _loads(flat[i + 1]), 1000.0) for i in range(0, len(flat), 2)]
        return sorted(views, key=lambda v: v["id"])


# Workers of memory queues, per queue object: they live and die with the queues they serve.
_MEMORY: weakref.WeakKeyDictionary[object, dict[str, tuple[float, WorkerView]]] = (
    weakref.WeakKeyDictionary()
)


class MemoryWorkerRegistry(WorkerRegistry):
    """The workers of in-process (memory) ``queues``: a worker is listed by the registry of
    any queue it serves."""

    def __init__(self, queues: Iterable[object]) -> None:
        self.queues = list(queues)

    @property
    def scope(self) -> Hashable:
        return ("memory", *(id(q) for q in self.queues))

    async def beat(
        self,
        worker_id: str,
        fields: Mapping[str, Any],
        ttl: float,
        started_at: float | None = None,
    ) -> float:
        now = time.time()
        started = started_at
        for queue in self.queues:
            known = _MEMORY.get(queue, {}).get(worker_id)
            if started is None and known is not None:
                started = known[1]["started_at"]
        started = now if started is None else started
        view = _view(worker_id, {**fields, "started_at": started, "last_heartbeat": now}, 1)
        for queue in self.queues:
            _MEMORY.setdefault(queue, {})[worker_id] = (now + ttl, view)
        return started

    async def remove(self, worker_id: str) -> None:
        for queue in self.queues:
            _MEMORY.get(queue, {}).pop(worker_id, None)

    async def list(self) -> list[WorkerView]:
        now = time.time()
        found: dict[str, WorkerView] = {}
        for queue in self.queues:
            for worker_id, (expiry, view) in list(_MEMORY.get(queue, {}).items()):
                if expiry > now:
                    found[worker_id] = view
        return [found[i] for i in sorted(found)][:MAX_LISTED]


def registries_for(queues: Sequence[WorkerQueue]) -> list[WorkerRegistry]:
    """The registries a worker serving ``queues`` announces itself in: each queue's
    :meth:`~redkeep.queue.protocol.WorkerQueue.worker_registry`, once per store (several
    queues under one Redis key prefix share one)."""
    registries: dict[Hashable, WorkerRegistry] = {}
    for queue in queues:
        registry = queue.worker_registry()
        if registry is not None:
            registries.setdefault(registry.scope, registry)
    return list(registries.values())


def registry_of(
    client: RedisClient | None, key_prefix: str, queues: Iterable[object] = ()
) -> WorkerRegistry:
    """The registry to read: the Redis one under ``key_prefix`` when there is a ``client``,
    else the in-process one of the memory ``queues``."""
    if client is not None:
        return RedisWorkerRegistry(client, key_prefix)
    return MemoryWorkerRegistry(queues)


class WorkerPresence:
    """A worker's entry in the registries of its queues: :meth:`start` when it starts,
    :meth:`beat` from its renewal loop (returns at once; one heartbeat in flight at most, one
    every :data:`HEARTBEAT_INTERVAL` seconds), :meth:`stop` when it stops. Registry errors are
    logged, never raised: the worker keeps working and its entry expires."""

    def __init__(self, worker: _Described) -> None:
        self.worker = worker
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started_at: float | None = None
        self._registries: list[WorkerRegistry] = []
        self._last = 0.0
        self._sent = (0, 0)
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        """Register (one heartbeat, awaited)."""
        self._registries = registries_for(self.worker.queues)
        await self._beat()

    def beat(self) -> None:
        """Send a heartbeat in the background when one is due and none is in flight: every
        :data:`HEARTBEAT_INTERVAL` seconds, every :data:`BUSY_INTERVAL` while the counts move."""
        w = self.worker
        due = HEARTBEAT_INTERVAL if self._sent == (w.active, w.processed) else BUSY_INTERVAL
        if time.monotonic() - self._last < due or (self._task and not self._task.done()):
            return
        self._task = asyncio.create_task(self._beat(), name=f"redkeep-heartbeat-{self.worker.id}")

    async def stop(self) -> None:
        """Leave the registries (after any heartbeat in flight)."""
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await self._task
        for registry in self._registries:
            try:
                await registry.remove(self.worker.id)
            except Exception as exc:
                log.warning("worker %s: leaving the worker registry failed (%s); the entry "
                            "expires by itself", self.worker.id, scrub(str(exc)))  # fmt: skip

    def fields(self) -> dict[str, Any]:
        """What a heartbeat records about the worker now."""
        w = self.worker
        fields: dict[str, Any] = {
            "host": self.host,
            "pid": self.pid,
            "queues": [q.name for q in w.queues],
            "concurrency": w.concurrency,
            "active": w.active,
            "processed": w.processed,
        }
        return fields

    async def _beat(self) -> None:
        self._last = time.monotonic()
        fields = self.fields()
        self._sent = (fields["active"], fields["processed"])
        for registry in self._registries:
            try:
                started = await registry.beat(
                    self.worker.id, fields, HEARTBEAT_TTL, self.started_at
                )
            except Exception as exc:
                if not self._failing:
                    log.warning("worker %s: heartbeat failed (%s); retrying every %gs",
                                self.worker.id, scrub(str(exc)), HEARTBEAT_INTERVAL)  # fmt: skip
                self._failing = True
                continue
            self._failing = False
            if self.started_at is None:
                self.started_at = started


def _loads(record: Any) -> dict[str, Any]:
    try:
        value = orjson.loads(record)
    except (orjson.JSONDecodeError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def _view(worker_id: str, record: Mapping[str, Any], per_second: float) -> WorkerView:
    """A worker's record as stored -> its view; stored times are in units of 1/``per_second``
    seconds (ms on Redis). A damaged field reads as empty or 0 (the listing never fails)."""

    def number(name: str) -> float:
        value = record.get(name)
        return float(value) if isinstance(value, int | float) else 0.0

    queues = record.get("queues")
    return {
        "id": worker_id,
        "host": str(record.get("host", "")),
        "pid": int(number("pid")),
        "queues": [str(q) for q in queues] if isinstance(queues, list) else [],
        "concurrency": int(number("concurrency")),
        "active": int(number("active")),
        "processed": int(number("processed")),
        "started_at": number("started_at") / per_second,
        "last_heartbeat": number("last_heartbeat") / per_second,
    }
