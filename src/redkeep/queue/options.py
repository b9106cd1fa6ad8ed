"""The constructor options every job queue backend shares (:class:`QueueOptions`: attempts,
backoff, retention, payload limit) and :func:`settings_options`, which reads them from
:class:`~redkeep.config.Settings`."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from redkeep.queue.backoff import Backoff
from redkeep.queue.job import RetentionPolicy

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["QueueOptions", "settings_options"]


class QueueOptions(TypedDict, total=False):
    """The options every backend's constructor takes as ``**options`` and passes on to
    :class:`~redkeep.queue.base.JobQueue`, whose defaults they have."""

    max_attempts: int
    backoff: Backoff | None
    retention: RetentionPolicy | None
    max_payload_bytes: int


def settings_options(settings: Settings) -> QueueOptions:
    """The constructor options every backend takes from ``settings``: attempts, backoff,
    retention and payload limit."""
    return {
        "max_attempts": settings.queue_max_attempts,
        "backoff": Backoff(settings.queue_backoff_base, settings.queue_backoff_max),
        "retention": RetentionPolicy(
            settings.queue_completed_ttl,
            settings.queue_completed_max,
            settings.queue_failed_ttl,
            settings.queue_failed_max,
        ),
        "max_payload_bytes": settings.max_payload_bytes,
    }
