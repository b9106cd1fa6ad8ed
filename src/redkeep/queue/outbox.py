"""The enqueue outbox: enqueues keep working while Redis is unreachable.

With ``REDKEEP_QUEUE_OUTBOX=/path/outbox.sqlite3`` (or an :class:`Outbox` attached to queues by
hand), :meth:`JobQueue.enqueue` and :meth:`JobQueue.enqueue_many` hand their validated jobs to
:meth:`Outbox.enqueue`:

- While the queue has nothing held and the breaker lets calls through, jobs go straight to
  Redis as before. A *transient* failure (connection refused or reset, timeout, breaker open,
  LOADING...) instead writes them to the outbox file (:mod:`redkeep.queue.outbox_store`: SQLite,
  WAL, ``synchronous=FULL``; all jobs of one call or none) and returns them with their final ids
  and status ``outbox``. Bad input raised before; any other error still raises.
- Once a queue has jobs held by this process, its later enqueues from this process are held
  behind them until they are relayed, so a producer's jobs reach Redis in the order it enqueued
  them.
- The relay (:mod:`redkeep.queue.outbox_relay`; a task in every process; one round at a time
  per file, by a lock) sends held jobs per queue in enqueue order, up to :data:`RELAY_BATCH`
  per script call, with their ids and "existing id: keep the existing job" semantics, then
  deletes them. A relay killed between the send and the delete sends them again on its next
  run: the ids find the jobs already there, so nothing is added twice and nothing is lost. An
  enqueue that failed after reaching Redis (a lost reply) is relayed the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redkeep.errors import OutboxError, OutboxFull, is_transient
from redkeep.queue.base import JobQueue
from redkeep.queue.job import Job
from redkeep.queue.outbox_records import OutboxStats, as_job, held_job
from redkeep.queue.outbox_relay import OutboxRelay
from redkeep.queue.outbox_store import HeldJob, OutboxStore
from redkeep.queue.prepare import _Prepared
from redkeep.resilience import CircuitBreaker

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["RELAY_BATCH", "Outbox", "OutboxStats"]

RELAY_BATCH = 500  # jobs per relay call (one enqueue script call: atomic in Redis)
CATCH_UP_WAIT = 1.0  # longest an enqueue waits for the relay to pass its queue's held jobs


class Outbox(OutboxRelay):
    """Holds enqueues that cannot reach Redis in a local file and relays them when it is back.

    ``queue_factory(name)`` gives the queue to relay jobs of a queue not attached in this
    process (jobs left by an earlier process); :class:`~redkeep.services.Services` passes its
    ``queue``. Use ``async with Outbox(...)`` or :meth:`open` and :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        namespace: str = "redkeep",
        max_jobs: int = 100_000,
        max_bytes: int = 256 * 1024 * 1024,
        breaker: CircuitBreaker | None = None,
        queue_factory: Callable[[str], JobQueue] | None = None,
        relay_batch: int = RELAY_BATCH,
    ) -> None:
        if max_jobs < 1 or max_bytes < 1 or relay_batch < 1:
            raise ValueError("max_jobs, max_bytes and relay_batch must be >= 1")
        self.path = os.fspath(path)
        self.namespace = namespace
        self.max_jobs = max_jobs
        self.max_bytes = max_bytes
        self.breaker = breaker or CircuitBreaker("queue")
        """Shared by direct enqueues and the relay: once open, enqueues are held at once and
        the relay's next call is the probe."""
        self.relay_batch = relay_batch
        self._queue_factory = queue_factory
        self._store: OutboxStore | None = None
        self._queues: dict[str, JobQueue] = {}
        self._pending: Counter[str] = Counter()  # holds in flight, per queue
        self._last_seq: dict[str, int] = {}  # highest seq this process held, per queue
        self._gone_through: dict[str, int] = {}  # every seq up to this has left the outbox
        self._seen: set[str] = set()  # queues with held jobs at the last look (any process)
        self._wake = asyncio.Event()  # a job was held: relay soon
        self._recovered = asyncio.Event()  # the breaker closed: end a failing relay's pause
        self._round = asyncio.Event()  # set (and replaced) after every relay loop iteration
        self._reachable = False  # the last call to Redis (a relay or a direct enqueue) worked
        self._relay: asyncio.Task[None] | None = None
        self._held: Counter[str] = Counter()
        self._relayed: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._relay_errors = 0
        self._last_error: str | None = None
        self._full = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        queue_factory: Callable[[str], JobQueue] | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> Outbox:
        """The outbox at ``settings.queue_outbox`` with its limits and the key prefix."""
        if settings.queue_outbox is None:
            raise OutboxError("REDKEEP_QUEUE_OUTBOX is not set")
        return cls(
            settings.queue_outbox,
            namespace=settings.key_prefix,
            max_jobs=settings.queue_outbox_max_jobs,
            max_bytes=settings.queue_outbox_max_bytes,
            breaker=breaker or CircuitBreaker.from_settings("queue", settings),
            queue_factory=queue_factory,
        )

    # -- lifecycle ----------------------------------------------------------------------------
    async def open(self) -> Outbox:
        """Check and open the file (:class:`~redkeep.errors.OutboxCorrupted` when it is not a
        sound outbox: it is left untouched), then start the relay. Idempotent."""
        if self._store is None:
            self._store = await OutboxStore.open(
                self.path, self.namespace, self.max_jobs, self.max_bytes
            )
            self._seen = set(await self._store.queues())
            self.breaker.add_listener(self._breaker_changed)
            self._relay = asyncio.create_task(self._relay_loop(), name="redkeep-outbox-relay")
        return self

    async def close(self) -> None:
        """Stop the relay and close the file; held jobs stay in it for the next start."""
        self.breaker.remove_listener(self._breaker_changed)
        if self._relay is not None:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay
            self._relay = None
        if self._store is not None:
            store, self._store = self._store, None
            await store.close()

    async def __aenter__(self) -> Outbox:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def attach(self, queue: JobQueue) -> None:
        """Route ``queue``'s enqueues through this outbox (and relay its held jobs)."""
        queue.outbox = self
        self._queues[queue.name] = queue

    # -- called by JobQueue -------------------------------------------------------------------
    async def enqueue(self, queue: JobQueue, prepared: list[_Prepared]) -> list[Job]:
        """Send ``prepared`` to Redis, or hold them all when Redis is unreachable."""
        name = queue.name
        breaker = self.breaker
        if self._holding(name) and self._reachable and self._last_error is None:
            await self._catch_up_with(name)
        if not self._holding(name) and breaker.allow():
            try:
                if len(prepared) == 1:
                    jobs = [await queue._enqueue_one(prepared[0])]
                else:
                    jobs = await queue._enqueue(prepared)
            except Exception as exc:
                breaker.record_failure(exc)
                if not is_transient(exc):
                    raise
                self._reachable = False
            except BaseException:
                breaker.release()
                raise
            else:
                breaker.record_success()
                self._reachable = True
                return jobs
        return await self._hold(name, prepared)

    async def _catch_up_with(self, queue: str) -> None:
        """Redis is back but this process still holds jobs of ``queue``: wait (a little) for
        the relay to pass them, rather than holding more behind them, so that a steady producer
        gets back to enqueueing directly."""
        deadline = time.monotonic() + CATCH_UP_WAIT
        while self._holding(queue) and self._reachable:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._round.wait()

    async def get_job(self, queue: str, job_id: str) -> Job | None:
        """The job ``job_id`` of ``queue`` while it is held, else None.

        The file is only read while this process holds jobs of ``queue`` or saw some at the
        relay's last look (at most a second ago): a job just held by another process sharing the
        file may be missed for that long."""
        if not self._might_hold(queue):
            return None
        held = await self._open_store().get(queue, job_id)
        return as_job(queue, held.job) if held is not None else None

    async def count(self, queue: str) -> int:
        """How many jobs of ``queue`` are held (as seen by :meth:`get_job`)."""
        if not self._might_hold(queue):
            return 0
        return await self._open_store().count(queue)

    async def list_jobs(self, queue: str, offset: int, limit: int) -> list[Job]:
        """Held jobs of ``queue`` in enqueue order."""
        return [as_job(queue, h.job) for h in await self._open_store().page(queue, offset, limit)]

    # -- observation --------------------------------------------------------------------------
    async def stats(self) -> OutboxStats:
        """Depth per queue (from the file) and this process's counters."""
        store = self._open_store()
        return OutboxStats(
            path=self.path,
            queues=await store.depths(),
            max_jobs=self.max_jobs,
            max_bytes=self.max_bytes,
            held=dict(self._held),
            relayed=dict(self._relayed),
            rejected=dict(self._rejected),
            relay_errors=self._relay_errors,
            full=self._full,
            last_error=self._last_error,
        )

    async def health(self) -> dict[str, Any]:
        """The outbox's part of the readiness report."""
        st = await self.stats()
        status = "full" if st.full else "holding" if st.jobs else "empty"
        age = st.oldest_age()
        return {
            "status": status,
            "path": st.path,
            "jobs": st.jobs,
            "bytes": st.bytes,
            "max_jobs": st.max_jobs,
            "max_bytes": st.max_bytes,
            "oldest_age_s": round(age, 3) if age is not None else None,
            "queues": {name: d.jobs for name, d in st.queues.items()},
            "breaker": self.breaker.state,
            "last_error": st.last_error,
        }

    async def drained(self, timeout: float) -> bool:  # noqa: ASYNC109 - a bounded poll
        """Wait up to ``timeout`` seconds until nothing is held; True when empty."""
        deadline = time.monotonic() + timeout
        while True:
            if not await self._open_store().queues():
                return True
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            await asyncio.sleep(0.02)

    # -- holding ------------------------------------------------------------------------------
    def _might_hold(self, queue: str) -> bool:
        return queue in self._seen or self._holding(queue)

    def _holding(self, queue: str) -> bool:
        """True while this process has jobs of ``queue`` held or being held."""
        if self._pending[queue]:
            return True
        return self._last_seq.get(queue, 0) > self._gone_through.get(queue, 0)

    async def _hold(self, queue: str, prepared: list[_Prepared]) -> list[Job]:
        store = self._open_store()
        now_ms = int(time.time() * 1000)
        jobs = [held_job(p, now_ms) for p in prepared]
        self._pending[queue] += 1
        future = store.add(queue, jobs)
        future.add_done_callback(functools.partial(self._written, queue, len(jobs)))
        results = await asyncio.shield(future)
        return [
            as_job(queue, r.job) if isinstance(r, HeldJob) else as_job(queue, j, p.value)
            for p, j, r in zip(prepared, jobs, results, strict=True)
        ]

    def _written(self, queue: str, n: int, future: asyncio.Future[list[int | HeldJob]]) -> None:
        self._pending[queue] -= 1
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            if isinstance(exc, OutboxFull):
                self._rejected[queue] += n
                self._full = True
            return
        seqs = [r for r in future.result() if isinstance(r, int)]
        if seqs:
            self._last_seq[queue] = max(self._last_seq.get(queue, 0), *seqs)
            self._held[queue] += len(seqs)
            self._seen.add(queue)
            self._full = False
            self._wake.set()

    def _open_store(self) -> OutboxStore:
        if self._store is None:
            raise OutboxError(f"the enqueue outbox {self.path} is not open")
        return self._store
