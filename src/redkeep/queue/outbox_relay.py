"""The relay of the enqueue outbox (:mod:`redkeep.queue.outbox`): sends held jobs to Redis per
queue in enqueue order, one round at a time per file (by the store's relay lock), and pauses
with a backoff while Redis stays unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import abstractmethod
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from redkeep.errors import CircuitOpen, OutboxError, is_transient, scrub
from redkeep.queue.outbox_records import relayed_job

if TYPE_CHECKING:
    from redkeep.queue.base import JobQueue
    from redkeep.queue.outbox_store import OutboxStore
    from redkeep.resilience import CircuitBreaker

__all__ = ["OutboxRelay"]

log = logging.getLogger("redkeep.queue.outbox")

POLL = 0.1  # seconds between relay rounds while this process has jobs held
BUSY = 0.02  # the same while another process holds the relay lock
IDLE = 1.0  # seconds between looks for jobs held by other processes
MAX_BACKOFF = 2.0  # longest pause of a failing relay


class OutboxRelay:
    """The relay half of :class:`~redkeep.queue.outbox.Outbox`, which sets this state up and
    implements the hooks."""

    path: str
    breaker: CircuitBreaker
    relay_batch: int
    _queue_factory: Callable[[str], JobQueue] | None
    _queues: dict[str, JobQueue]
    _last_seq: dict[str, int]
    _gone_through: dict[str, int]
    _seen: set[str]
    _wake: asyncio.Event
    _recovered: asyncio.Event
    _round: asyncio.Event
    _reachable: bool
    _relayed: Counter[str]
    _relay_errors: int
    _last_error: str | None
    _full: bool

    @abstractmethod
    def attach(self, queue: JobQueue) -> None: ...

    @abstractmethod
    def _holding(self, queue: str) -> bool: ...

    @abstractmethod
    def _open_store(self) -> OutboxStore: ...

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
            await queue._enqueue([relayed_job(r.job) for r in rows])
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
            gone = self._gone_through.get(name, 0)
            if last > gone:
                through = await store.relayed_through(name)
                if through > gone:
                    # Another process relayed some: Redis is back, even though this process
                    # neither relayed nor enqueued since. Without this, a steady producer that
                    # never wins the relay lock would hold every job for as long as it produces.
                    self._reachable = True
                    self._last_error = None
                self._gone_through[name] = max(gone, through)
