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
- The relay (a task in every process; one round at a time per file, by a lock) sends held jobs
  per queue in enqueue order, up to :data:`RELAY_BATCH` per script call, with their ids and
  "existing id: keep the existing job" semantics, then deletes them. A relay killed between the
  send and the delete sends them again on its next run: the ids find the jobs already there, so
  nothing is added twice and nothing is lost. An enqueue that failed after reaching Redis (a
  lost reply) is relayed the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from redkeep.errors import (
    CircuitOpen,
    OutboxError,
    OutboxFull,
    SerializationError,
    is_transient,
    scrub,
)
from redkeep.queue.backoff import Backoff
from redkeep.queue.base import JobQueue, _Prepared
from redkeep.queue.job import NO_HEADERS, Job, JobStatus, decode_value, make_job
from redkeep.queue.outbox_store import HeldJob, NewJob, OutboxStore, QueueDepth
from redkeep.resilience import CircuitBreaker

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["RELAY_BATCH", "Outbox", "OutboxStats"]

log = logging.getLogger("redkeep.queue.outbox")

RELAY_BATCH = 500  # jobs per relay call (one enqueue script call: atomic in Redis)
POLL = 0.1  # seconds between relay rounds while this process has jobs held
BUSY = 0.02  # the same while another process holds the relay lock
IDLE = 1.0  # seconds between looks for jobs held by other processes
CATCH_UP_WAIT = 1.0  # longest an enqueue waits for the relay to pass its queue's held jobs
MAX_BACKOFF = 2.0  # longest pause of a failing relay


@dataclass(frozen=True)
class OutboxStats:
    """A snapshot of the outbox for metrics and health (counters since this process started)."""

    path: str
    queues: dict[str, QueueDepth]
    """Held jobs per queue, from the file (every process's)."""
    max_jobs: int
    max_bytes: int
    held: dict[str, int] = field(default_factory=dict)
    """Jobs this process wrote to the outbox, per queue."""
    relayed: dict[str, int] = field(default_factory=dict)
    """Jobs this process relayed to Redis, per queue."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Jobs refused because the outbox was full, per queue."""
    relay_errors: int = 0
    full: bool = False
    """The last hold was refused for lack of room and nothing has left the outbox since."""
    last_error: str | None = None
    at: float = field(default_factory=time.time)

    @property
    def jobs(self) -> int:
        """Held jobs, all queues."""
        return sum(d.jobs for d in self.queues.values())

    @property
    def bytes(self) -> int:
        """Bytes held, all queues."""
        return sum(d.bytes for d in self.queues.values())

    def oldest_age(self, queue: str | None = None) -> float | None:
        """Seconds since the oldest held job (of ``queue``, or of all) was enqueued."""
        found = [
            d.oldest_ms
            for name, d in self.queues.items()
            if d.oldest_ms is not None and (queue is None or name == queue)
        ]
        return max(0.0, self.at - min(found) / 1000.0) if found else None


class Outbox:
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
        return _as_job(queue, held.job) if held is not None else None

    async def count(self, queue: str) -> int:
        """How many jobs of ``queue`` are held (as seen by :meth:`get_job`)."""
        if not self._might_hold(queue):
            return 0
        return await self._open_store().count(queue)

    async def list_jobs(self, queue: str, offset: int, limit: int) -> list[Job]:
        """Held jobs of ``queue`` in enqueue order."""
        return [_as_job(queue, h.job) for h in await self._open_store().page(queue, offset, limit)]

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
        jobs = [_new_job(p, now_ms) for p in prepared]
        self._pending[queue] += 1
        future = store.add(queue, jobs)
        future.add_done_callback(functools.partial(self._written, queue, len(jobs)))
        results = await asyncio.shield(future)
        return [
            _as_job(queue, r.job) if isinstance(r, HeldJob) else _as_job(queue, j, p.value)
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

    # -- relay --------------------------------------------------------------------------------
    async def _relay_loop(self) -> None:
        store = self._open_store()
        failures = 0
        while True:
            self._wake.clear()
            relayed = 0
            pause = 0.0
            busy = False  # another process was relaying
            try:
                names = await store.queues()
            except Exception as exc:  # the relay must outlive a failing disk; health shows it
                self._relay_failed(exc, 1)
                names = sorted(self._seen)
            self._seen = set(names)
            if names and store.try_lock_relay():
                try:
                    relayed = await self._relay_round(names)
                except Exception as exc:
                    failures += 1
                    pause = self._relay_failed(exc, failures)
                else:
                    if failures and relayed:
                        log.info("outbox %s: relaying again", self.path)
                    failures = 0
                    self._last_error = None
                finally:
                    store.unlock_relay()
            elif names:
                busy = True
            try:
                await self._catch_up()
            except Exception as exc:
                pause = max(pause, self._relay_failed(exc, failures + 1))
            self._round.set()  # wake enqueues waiting to catch up, and start a new round
            self._round = asyncio.Event()
            if relayed:
                await asyncio.sleep(0)  # let other tasks run
                continue
            if pause:
                # Not cut short by new holds (they keep coming during an outage), only by the
                # breaker closing (a direct enqueue got through).
                self._recovered.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._recovered.wait()
                continue
            mine = any(self._holding(q) for q in self._last_seq)
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout((BUSY if busy else POLL) if mine else IDLE):
                    await self._wake.wait()

    def _breaker_changed(self, name: str, old: str, new: str) -> None:
        if new == "closed":
            self._recovered.set()

    def _relay_failed(self, exc: Exception, failures: int) -> float:
        """Record a failed relay round; the pause before the next one."""
        self._relay_errors += 1
        if is_transient(exc):
            self._reachable = False
        message = f"{type(exc).__name__}: {scrub(str(exc))}"
        if message != self._last_error:
            log.warning("outbox %s: relay failed, will retry (%s)", self.path, message)
        self._last_error = message
        if isinstance(exc, CircuitOpen):
            return max(exc.retry_after, 0.05)
        return float(min(0.05 * 2 ** min(failures - 1, 10), MAX_BACKOFF))

    async def _relay_round(self, names: list[str]) -> int:
        """One batch per queue of ``names``; how many jobs were relayed."""
        total = 0
        failure: Exception | None = None
        for name in names:
            try:
                total += await self._relay_queue(name)
            except Exception as exc:
                if is_transient(exc):
                    raise  # Redis is away: every queue would fail the same way
                failure = failure or exc  # this queue's problem: the others go on
        if failure is not None:
            if not total:
                raise failure
            self._relay_failed(failure, 1)  # reported; the other queues moved, so no pause
        return total

    async def _relay_queue(self, name: str) -> int:
        store = self._open_store()
        rows = await store.head(name, self.relay_batch)
        if not rows:
            return 0
        queue = self._queue(name)
        breaker = self.breaker
        if not breaker.allow():
            raise CircuitOpen(breaker.name, breaker.retry_after)
        try:
            await queue._enqueue([_relayed(r.job) for r in rows])
        except Exception as exc:
            breaker.record_failure(exc)
            raise
        except BaseException:
            breaker.release()
            raise
        breaker.record_success()
        self._reachable = True
        last = rows[-1].seq
        await store.remove_through(name, last)
        self._relayed[name] += len(rows)
        self._gone_through[name] = max(self._gone_through.get(name, 0), last)
        self._full = False
        return len(rows)

    def _queue(self, name: str) -> JobQueue:
        queue = self._queues.get(name)
        if queue is None:
            if self._queue_factory is None:
                raise OutboxError(f"jobs of queue {name!r} are held, and no queue is attached")
            queue = self._queue_factory(name)
            if queue.name not in self._queues:
                self.attach(queue)
        return queue

    async def _catch_up(self) -> None:
        """Learn which of this process's held jobs left the outbox (relayed by any process)."""
        store = self._open_store()
        for name, last in list(self._last_seq.items()):
            if last > self._gone_through.get(name, 0):
                through = await store.relayed_through(name)
                self._gone_through[name] = max(self._gone_through.get(name, 0), through)


# -- conversions ---------------------------------------------------------------------------------
def _new_job(p: _Prepared, now_ms: int) -> NewJob:
    # A relative delay counts from the enqueue, not from the relay (local clock).
    run_at = max(p.run_at_ms, now_ms + p.delay_ms) if p.delay_ms or p.run_at_ms else 0
    return NewJob(
        p.id, p.name, p.payload, p.priority, run_at, p.max_attempts, p.backoff, p.timeout, now_ms,
        p.headers,
    )  # fmt: skip


def _relayed(j: NewJob) -> _Prepared:
    # The id may exist already (an earlier relay, or an enqueue that reached Redis before its
    # reply was lost): every enqueue checks, and then keeps the existing job.
    return _Prepared(
        j.id, j.name, j.payload, j.priority, 0, j.run_at_ms, j.max_attempts, j.backoff,
        j.timeout, None, j.headers,
    )  # fmt: skip


_DECODE: Any = object()


def _as_job(queue: str, j: NewJob, payload: Any = _DECODE) -> Job:
    """A held job as a :class:`Job` (status ``outbox``); ``payload`` decoded unless given."""
    problem: str | None = None
    if payload is _DECODE:
        try:
            payload = decode_value(j.payload)
        except SerializationError as exc:
            payload, problem = None, str(exc)
    return make_job(
        id=j.id,
        name=j.name,
        queue=queue,
        payload=payload,
        payload_error=problem,
        status=JobStatus.OUTBOX,
        priority=j.priority,
        max_attempts=j.max_attempts,
        created_at=j.created_ms / 1000.0,
        run_at=(j.run_at_ms or j.created_ms) / 1000.0,
        timeout=j.timeout,
        backoff=_backoff(j.backoff),
        headers=orjson.loads(j.headers) if j.headers else NO_HEADERS,
    )


def _backoff(text: str) -> Backoff | None:
    return Backoff.from_list(orjson.loads(text)) if text else None
