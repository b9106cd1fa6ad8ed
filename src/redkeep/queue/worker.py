"""The worker: claims jobs in batches, runs handlers, reports outcomes, renews leases.

One fetch loop per queue. A loop's step (one script call) reports every outcome collected since
the previous step and claims as many jobs as there are free slots, so a busy worker needs about
one round trip per batch of jobs. Idle loops block on the queue's wake-up marker until their
step's next due time (a delayed job, a lease expiry: at most :data:`MAX_BLOCK`); whatever makes
something due sooner wakes them through the marker. A lease renewer
extends the leases of running jobs independently of the handlers and cancels the tasks of jobs
that were cancelled or whose lease was lost.

Here: :class:`Worker` (start and stop, the fetch loops and their idle wait, running jobs). Its
mixins: :mod:`~redkeep.queue.worker_handoff` (jobs handed over by a wait, leaving the idle set),
:mod:`~redkeep.queue.worker_leases` (lease renewal), :mod:`~redkeep.queue.worker_stop` (the
drain); :mod:`~redkeep.queue.worker_state` holds the per-queue and per-job state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from redis.backoff import AbstractBackoff

from redkeep.errors import InvalidJob, scrub
from redkeep.queue.execution import Handler, WorkerObserver, execute_job, report_attempt
from redkeep.queue.executors import ExecutorKind, Executors, prepare_handlers
from redkeep.queue.job import Job
from redkeep.queue.outage import Outage, settings_backoff
from redkeep.queue.protocol import Outcome, StepRequest, WorkerQueue, new_request_id
from redkeep.queue.schedules import drive_schedules
from redkeep.queue.worker_handoff import HandOffs
from redkeep.queue.worker_leases import LeaseRenewal
from redkeep.queue.worker_state import QueueState, RunningJob
from redkeep.queue.worker_stop import WorkerStop
from redkeep.queue.workers import WorkerPresence

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["Worker"]

log = logging.getLogger("redkeep.queue.worker")

# Longest idle wait between two steps (the upkeep of an empty queue: retention, forgotten
# workers). Shorter when the last step says something is due sooner (a delayed job, a lease
# expiry, a stale hand-off), and, for a worker whose lease is short, lease - renew interval (a
# lease it sees taken after its step expires no later than its next step).
MAX_BLOCK = 10.0
MIN_BLOCK = 1.0
RENEW_MAX = 1.0  # longest interval between two lease renewals
FLUSH_DELAY = 0.02  # longest wait before reporting a finished job
FINAL_FLUSH_TIMEOUT = 10.0  # longest wait at stop for the last outcomes to be reported
REGISTRATION_MARGIN = 0.5  # an idle worker stays registered this long after its wait ends
# Longest sleep of a loop the rate limit stopped before it steps again: the upkeep goes on and a
# raised or cleared limit reaches it within this time (at one script call per second at most).
THROTTLE_UPKEEP = 1.0


class Worker(HandOffs, WorkerStop, LeaseRenewal):
    """Runs jobs from one or more queues until :meth:`stop` (or SIGTERM/SIGINT).

    A handler gets the :class:`Job`; its return value (JSON-serializable) becomes the result.
    Async handlers run as tasks, sync ones in threads or, with ``executor="process"``, child
    processes (see :mod:`redkeep.queue.executors`). ``prefetch`` jobs beyond ``concurrency`` may
    be claimed ahead (started as soon as a slot frees, released at stop); 0 claims only for free
    slots. ``outage_backoff`` (redis-py) spaces out retries while the backend is down.
    """

    def __init__(
        self,
        queues: WorkerQueue | Sequence[WorkerQueue],
        handlers: Mapping[str, Handler],
        *,
        concurrency: int = 10,
        lease: float = 30.0,
        grace_period: float = 10.0,
        prefetch: int | None = None,
        renew_interval: float | None = None,
        worker_id: str | None = None,
        observer: WorkerObserver | None = None,
        handle_signals: bool = True,
        max_result_bytes: int = 4 * 1024 * 1024,
        executor: ExecutorKind = "thread",
        outage_backoff: AbstractBackoff | None = None,
    ) -> None:
        self.queues = [queues] if isinstance(queues, WorkerQueue) else list(queues)
        if not self.queues:
            raise InvalidJob("a worker needs at least one queue")
        if concurrency < 1 or lease <= 0 or grace_period < 0:
            raise InvalidJob("concurrency must be >= 1, lease > 0 and grace_period >= 0")
        self.handlers = prepare_handlers(handlers, executor)
        self.concurrency = concurrency
        self.prefetch = concurrency if prefetch is None else max(0, prefetch)
        self.lease = lease
        self.grace_period = grace_period
        self.renew_interval = renew_interval or min(lease / 3, RENEW_MAX)
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        if not self.id or len(self.id) > 200 or any(c in self.id for c in "|\n\r\t "):
            raise InvalidJob("worker_id must be 1-200 characters without '|' or whitespace")
        self._requests = 0
        self.observer = observer
        self.handle_signals = handle_signals
        self.max_result_bytes = max_result_bytes
        self._batch = max(1, self.prefetch // 2)
        self._running: dict[str, RunningJob] = {}
        self._buffer: deque[tuple[QueueState, Job]] = deque()
        self._reserved = 0
        self._stopping = False
        self._drained = False
        self._stop_event: asyncio.Event | None = None
        self._states: list[QueueState] = []
        self._exec = Executors(concurrency, max_result_bytes, observer, self._slot_freed)
        self._outage = Outage(self.id, outage_backoff)
        self.processed = 0
        """Jobs this worker ran to an outcome (released ones not counted)."""
        self._presence = WorkerPresence(self)

    @classmethod
    def from_settings(
        cls,
        queues: WorkerQueue | Sequence[WorkerQueue],
        handlers: Mapping[str, Handler],
        settings: Settings,
        **overrides: object,
    ) -> Worker:
        """A worker with concurrency, lease and grace period from ``settings``."""
        opts: dict[str, object] = {
            "concurrency": settings.queue_concurrency,
            "lease": settings.queue_lease,
            "grace_period": settings.queue_grace_period,
            "max_result_bytes": settings.max_payload_bytes,
            "executor": settings.queue_executor,
            "outage_backoff": settings_backoff(settings),
        }
        opts.update(overrides)
        return cls(queues, handlers, **opts)  # type: ignore[arg-type]

    @property
    def active(self) -> int:
        """Jobs running now."""
        return len(self._running)

    @property
    def stuck_threads(self) -> int:
        """Handler threads still running after their attempt ended (each holds a slot)."""
        return self._exec.held

    def stop(self) -> None:
        """Ask the worker to stop: claim no more, finish or release active jobs, return."""
        if not self._stopping:
            log.info("worker %s: stop requested", self.id)
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        for st in self._states:
            st.event.set()

    async def run(self) -> None:
        """Process jobs until :meth:`stop` is called or SIGTERM/SIGINT arrives."""
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        if self._stopping:
            self._stop_event.set()
        self._states = [QueueState(q) for q in self.queues]
        installed: list[signal.Signals] = []
        if self.handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self.stop)
                    installed.append(sig)
        lift = [q.spin_only_while(self._idle_now) for q in self.queues]
        for q in self.queues:
            with contextlib.suppress(Exception):
                await q.worker_started(self.id)
        await self._presence.start()
        loops = [asyncio.create_task(self._fetch_loop(st)) for st in self._states]
        renewer = asyncio.create_task(self._renew_loop())
        busy = self._busy_now
        schedulers = [asyncio.create_task(drive_schedules(q, self.id, self._stop_event, busy))
                      for q in self.queues]  # fmt: skip
        try:
            await self._stop_event.wait()
            await self._drain()
            # Report the last outcomes; bounded, so a stop during an outage still returns (the
            # unreported jobs then run again after their lease: at-least-once).
            _, pending = await asyncio.wait(loops, timeout=FINAL_FLUSH_TIMEOUT)
            if pending:
                log.warning("worker %s: stopped without reporting every outcome", self.id)
        finally:
            for task in [*loops, renewer, *schedulers]:
                task.cancel()
            await asyncio.gather(*loops, renewer, *schedulers, return_exceptions=True)
            for st in self._states:
                await self._deregister(st)
            await self._presence.stop()
            for undo in lift:
                undo()
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self._exec.close()
            log.info("worker %s: stopped", self.id)

    def _idle_now(self) -> bool:
        """No job is running: the queue's client may busy-poll (nothing else needs the loop)."""
        return not self._running

    def _busy_now(self) -> bool:
        return bool(self._running)

    def _request(self, outcomes: list[Outcome], claim: int, idle: float) -> StepRequest:
        self._requests += 1
        rid = new_request_id(self.id, self._requests)
        return StepRequest(self.id, rid, outcomes, claim, self.lease, idle)

    # -- fetching ------------------------------------------------------------------------------
    def _room(self) -> int:
        """Jobs this worker may claim now (free slots plus prefetch room)."""
        held = len(self._running) + len(self._buffer) + self._reserved + self._exec.held
        return self.concurrency + self.prefetch - held

    def _should_step(self, st: QueueState) -> bool:
        if st.pending is not None:
            return True
        if self._stopping:
            return bool(st.outcomes)
        room = self._room()
        if (room >= self._batch and not st.empty) or (st.woken and room > 0):
            return True
        if not st.outcomes:
            return False
        return (
            len(st.outcomes) >= self._batch
            or not self._running
            or time.monotonic() - st.first_outcome >= FLUSH_DELAY
        )

    async def _fetch_loop(self, st: QueueState) -> None:
        q = st.queue
        next_due: float | None = None
        while True:
            st.event.clear()
            if self._drained and not st.outcomes and st.pending is None:
                return
            if not self._should_step(st):
                await self._idle(st, next_due)
                continue
            request = st.pending
            if request is None:
                claim = 0 if self._stopping else max(0, self._room())
                outcomes, st.outcomes = st.outcomes, []
                idle = self._max_block() + REGISTRATION_MARGIN if claim > 0 else 0.0
                request = st.pending = self._request(outcomes, claim, idle)
                self._reserved += claim
            st.woken = False
            try:
                res = await q.step(request)
            except Exception as exc:
                delay = self._outage.failed("claim", q.name, exc)
                if self._drained and not request.outcomes:
                    # Stopping with nothing to report: jobs the step may have claimed before
                    # its reply was lost come back when their lease expires.
                    st.pending = None
                    self._reserved -= request.claim
                    return
                # Sent again as is (same request id) until answered: a step the server applied
                # before the reply was lost returns its jobs instead of claiming others.
                await asyncio.sleep(delay)
                continue
            self._outage.succeeded()
            st.pending = None
            self._reserved -= request.claim
            if len(res.jobs) < request.claim:  # room reserved and not used: other loops may claim
                self._room_freed(st)
            for job in res.jobs:
                self._take(st, job)
            self._start_next()
            if res.rejected:
                log.warning("queue %s: stale outcome rejected for %s", q.name, res.rejected)
            if res.recovered and self.observer is not None:
                self.observer.on_recovered(q.name, res.recovered)
            next_due = res.next_due
            st.empty = not res.more
            st.throttled_until = 0.0
            if res.throttled is not None:
                st.throttled_until = time.monotonic() + min(res.throttled, THROTTLE_UPKEEP)
            if res.more and self._room() >= self._batch and not self._stopping:
                continue
            if self._should_step(st) and (st.outcomes or res.jobs):
                continue
            await self._idle(st, next_due)

    async def _idle(self, st: QueueState, next_due: float | None) -> None:
        """Wait for an outcome to report, a wake-up from the queue, or the next due job. A loop
        the rate limit stopped sleeps until its next slot instead (no blocking pop: wake-ups
        from enqueues could not start anything), then steps."""
        block = self._max_block()
        timeout = block if next_due is None else max(0.0, min(block, next_due))
        if st.outcomes:
            flush_in = st.first_outcome + FLUSH_DELAY - time.monotonic()
            timeout = max(0.0, min(timeout, flush_in))
        throttled = st.throttled_until > 0.0
        if throttled:
            timeout = max(0.0, min(timeout, st.throttled_until - time.monotonic()))
        want_jobs = st.empty and not self._stopping and self._room() > 0 and not throttled
        if not want_jobs:  # no blocking wait: look again within a second (nothing is sent)
            timeout = min(timeout, MIN_BLOCK)
        if want_jobs and st.waiter is None:
            st.waiter = asyncio.create_task(st.queue.wait_for_jobs(self.id, max(timeout, 0.01)))
            st.waiter.add_done_callback(lambda task: self._on_wait_done(st, task))
        waits: set[asyncio.Future[object]] = {asyncio.ensure_future(st.event.wait())}
        if st.waiter is not None:
            waits.add(st.waiter)  # type: ignore[arg-type]
        done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            if w is not st.waiter:
                w.cancel()
        if throttled and time.monotonic() >= st.throttled_until:
            st.throttled_until = 0.0
            st.woken = True  # the next slot is free: step
        if st.waiter is not None and st.waiter in done:
            waiter, st.waiter = st.waiter, None
            try:
                woken = waiter.result()
            except Exception as exc:
                await asyncio.sleep(self._outage.failed("wait", st.queue.name, exc))
                return
            self._outage.succeeded()
            if isinstance(woken, Job):
                self._take_handed(st, woken)
            elif woken and (self._room() <= 0 or self._stopping):
                # Pass the wake-up on to another worker that has room.
                with contextlib.suppress(Exception):
                    await st.queue.wake_workers()
            else:
                # woken by the queue, or the wait timed out: step (claims, reaper, promotion)
                st.woken = True

    def _max_block(self) -> float:
        """Longest idle wait: :data:`MAX_BLOCK`, or lease - renew interval when shorter (not
        below :data:`MIN_BLOCK`)."""
        return min(MAX_BLOCK, max(MIN_BLOCK, self.lease - self.renew_interval))

    def _take(self, st: QueueState, job: Job) -> None:
        """Queue a job claimed for this worker to run, or release it when stopping."""
        if self._stopping:
            self._add_outcome(st, Outcome(job.id, job.token, "release"))
        else:
            self._buffer.append((st, job))

    # -- running -------------------------------------------------------------------------------
    def _start_next(self) -> None:
        """Start prefetched jobs while slots are free."""
        while not self._stopping and (item := self._exec.next(self._buffer, len(self._running))):
            st, job = item
            task = asyncio.create_task(self._run_job(st, job))
            self._running[job.id] = RunningJob(job, st.queue, task, time.perf_counter())

    def _slot_freed(self) -> None:
        self._start_next()
        for st in self._states:
            st.event.set()

    def _room_freed(self, by: QueueState | None = None) -> None:
        """Room came back (a step claimed less than it reserved, a prefetched job was lost):
        wake the other loops, which may be waiting without a blocking pop for lack of room."""
        for st in self._states:
            if st is not by:
                st.event.set()

    def _add_outcome(self, st: QueueState, outcome: Outcome) -> None:
        first = not st.outcomes
        if first:
            st.first_outcome = time.monotonic()
        st.outcomes.append(outcome)
        self._nudge(st, first)

    def _nudge(self, st: QueueState, force: bool = False) -> None:
        """Wake the fetch loop of ``st`` when it has something to do: step, start a blocking
        wait (room freed while the queue is empty), or arm the flush timer of a first outcome
        (``force``). A busy loop is not woken for every finished job: each wake-up costs a
        pass through :meth:`_idle`."""
        if force or (st.empty and st.waiter is None) or self._should_step(st):
            st.event.set()

    async def _run_job(self, st: QueueState, job: Job) -> None:
        outcome: Outcome | None = None
        try:
            outcome = await execute_job(st.queue, job, self.handlers, self._exec)
        except asyncio.CancelledError:
            running = self._running.get(job.id)
            if running is not None and running.reason == "release":
                outcome = Outcome(job.id, job.token, "release")
        except Exception as exc:  # defensive: execute_job catches handler errors itself
            log.exception("queue %s: job %s crashed the runner", st.queue.name, job.id)
            outcome = Outcome(job.id, job.token, "fail", scrub(repr(exc)))
        finally:
            running = self._running.pop(job.id, None)
            self._start_next()
            if outcome is None or outcome.kind != "release":
                self.processed += 1
            if outcome is not None:
                self._add_outcome(st, outcome)
            else:
                self._nudge(st)
            if running is not None and self.observer is not None:
                report_attempt(self.observer, job, outcome, running.reason, running.started)
