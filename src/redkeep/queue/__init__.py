"""Durable job queue and worker: Redis (RESP, Cluster, Upstash REST) and in-memory backends.

See docs/queue.md for the API and the guarantees.
"""

from redkeep.errors import InvalidJob
from redkeep.queue.backoff import Backoff
from redkeep.queue.base import JobQueue
from redkeep.queue.events import EventsConfig, JobEvent, ThroughputPoint
from redkeep.queue.execution import Handler, WorkerObserver
from redkeep.queue.executors import ProcessHandler, in_process
from redkeep.queue.flows import Flow
from redkeep.queue.job import Job, JobFailure, JobSpec, JobStatus, RetentionPolicy
from redkeep.queue.limits import GroupLimit, RateLimit
from redkeep.queue.memory import MemoryJobQueue
from redkeep.queue.outbox import Outbox, OutboxStats
from redkeep.queue.progress import current_job, progress, progress_sync
from redkeep.queue.protocol import Outcome, StepRequest, StepResult, WorkerQueue
from redkeep.queue.redis import RedisJobQueue, list_queue_names
from redkeep.queue.schedules import Schedule
from redkeep.queue.worker import Worker

__all__ = [
    "Backoff",
    "EventsConfig",
    "Flow",
    "GroupLimit",
    "Handler",
    "InvalidJob",
    "Job",
    "JobEvent",
    "JobFailure",
    "JobQueue",
    "JobSpec",
    "JobStatus",
    "MemoryJobQueue",
    "Outbox",
    "OutboxStats",
    "Outcome",
    "ProcessHandler",
    "RateLimit",
    "RedisJobQueue",
    "RetentionPolicy",
    "Schedule",
    "StepRequest",
    "StepResult",
    "ThroughputPoint",
    "Worker",
    "WorkerObserver",
    "WorkerQueue",
    "current_job",
    "in_process",
    "list_queue_names",
    "progress",
    "progress_sync",
]
