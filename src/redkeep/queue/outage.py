"""How a worker rides out a backend outage: backoff between attempts, a log line per change.

Every failed call of a worker to its queues (claiming, waiting, renewing leases) goes through
one :class:`Outage`: the first failure logs a WARNING naming the error, the next ones only at
DEBUG (plus a reminder every minute, or when the error changes), and the first success after
failures logs at INFO how long the outage lasted. Delays between attempts come from redis-py's
backoff classes, as for the service's connection (equal jitter from ``retry_base_delay``
doubling up to ``retry_max_delay``).
"""

from __future__ import annotations

import logging
from time import monotonic
from typing import TYPE_CHECKING

from redis.backoff import AbstractBackoff, EqualJitterBackoff

from redkeep.errors import scrub

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["REMINDER_INTERVAL", "Outage", "settings_backoff"]

log = logging.getLogger("redkeep.queue.worker")

REMINDER_INTERVAL = 60.0  # seconds between "still failing" lines during a long outage


def settings_backoff(settings: Settings) -> AbstractBackoff:
    """The backoff of the service's connection: ``retry_base_delay`` doubling up to
    ``retry_max_delay``, with equal jitter."""
    return EqualJitterBackoff(cap=settings.retry_max_delay, base=settings.retry_base_delay)


class Outage:
    """Backoff and state-change logging for the backend calls of worker ``worker_id``."""

    def __init__(self, worker_id: str, backoff: AbstractBackoff | None = None) -> None:
        self.worker_id = worker_id
        self.backoff = backoff or EqualJitterBackoff(cap=2.0, base=0.05)
        self.failures = 0
        """Failed calls since the last success."""
        self._since = 0.0
        self._last_line = 0.0
        self._error = ""

    def failed(self, what: str, queue: str, exc: BaseException) -> float:
        """Record a failed ``what`` (claim, wait, lease renewal) on ``queue``; the seconds to
        wait before trying again."""
        now = monotonic()
        error = f"{type(exc).__name__}: {scrub(str(exc))}"
        if not self.failures:
            self._since = self._last_line = now
            self._error = error
            log.warning(
                "worker %s: the queue backend is failing (%s on queue %s: %s); retrying with "
                "backoff, next line when it is back",
                self.worker_id, what, queue, error,
            )  # fmt: skip
        elif type(exc).__name__ != self._error.split(":", 1)[0] or (
            now - self._last_line >= REMINDER_INTERVAL
        ):
            self._last_line = now
            self._error = error
            log.warning(
                "worker %s: the queue backend is still failing after %.0f s (%d failed calls; "
                "now %s on queue %s: %s)",
                self.worker_id, now - self._since, self.failures + 1, what, queue, error,
            )  # fmt: skip
        else:
            log.debug("worker %s: %s on queue %s failed: %s", self.worker_id, what, queue, error)
        delay = float(self.backoff.compute(self.failures))
        self.failures += 1
        return delay

    def succeeded(self) -> None:
        """A call went through: log the end of an outage, reset the backoff."""
        if self.failures:
            log.info(
                "worker %s: the queue backend is back after %.1f s (%d failed calls)",
                self.worker_id, monotonic() - self._since, self.failures,
            )  # fmt: skip
            self.failures = 0
            self.backoff.reset()  # type: ignore[no-untyped-call]
