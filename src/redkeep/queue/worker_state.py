"""What a :class:`~redkeep.queue.worker.Worker` keeps per queue and per running job."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from redkeep.queue.job import Job
from redkeep.queue.protocol import Outcome, StepRequest, WorkerQueue

__all__ = ["QueueState", "RunningJob"]


@dataclass
class RunningJob:
    """A job this worker started, until its task ends."""

    job: Job
    queue: WorkerQueue
    task: asyncio.Task[None]
    started: float
    reason: str | None = None  # why it was cancelled: "release", "lost" or "cancelled"


@dataclass
class QueueState:
    """The fetch loop of one queue: outcomes to report, the pending step, the idle wait."""

    queue: WorkerQueue
    outcomes: list[Outcome] = field(default_factory=list)
    pending: StepRequest | None = None  # a step whose reply was not received: sent again as is
    first_outcome: float = 0.0
    event: asyncio.Event = field(default_factory=asyncio.Event)
    waiter: asyncio.Task[bool | Job] | None = None
    empty: bool = True  # the last step left no waiting jobs: block on the wake-up marker
    woken: bool = True  # runnable jobs may exist (the queue signalled, or at start): step
    taken: Job | None = None  # last handed-over job already started by _on_wait_done
    throttled_until: float = 0.0  # the rate limit lets a job start then (monotonic; 0: not)
