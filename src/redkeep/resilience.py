"""Circuit breaker and retry policy for calls to a backend that may be down.

:class:`CircuitBreaker` is a small asyncio-friendly breaker (closed / open / half-open). It counts
only *transient* failures (:func:`redkeep.errors.is_transient`): an answered error such as
WRONGTYPE proves the backend is reachable and never opens the circuit. No maintained asyncio
breaker exists on PyPI, hence this one.

:class:`RetryPolicy` retries a coroutine after transient errors with exponential backoff and full
jitter.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Literal, TypeVar

from redkeep.errors import CircuitOpen, is_transient

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["BreakerListener", "BreakerState", "CircuitBreaker", "RetryPolicy"]

log = logging.getLogger("redkeep.resilience")

T = TypeVar("T")
BreakerState = Literal["closed", "open", "half_open"]
BreakerListener = Callable[[str, "BreakerState", "BreakerState"], None]
"""Called as ``listener(breaker_name, old_state, new_state)`` on every state change."""


class CircuitBreaker:
    """Closed / open / half-open circuit breaker on a monotonic clock.

    * closed: calls pass; ``failure_threshold`` transient failures within ``window`` seconds open
      the circuit.
    * open: calls are refused (:meth:`allow` is False, :meth:`call` raises
      :class:`~redkeep.errors.CircuitOpen`) until ``reset_timeout`` seconds have passed.
    * half-open: exactly one probe call is let through; its success closes the circuit, a
      transient failure opens it again for another ``reset_timeout``.

    Use either :meth:`call`, or :meth:`allow` followed by exactly one of :meth:`record_success`,
    :meth:`record_failure` or :meth:`release` (the latter when the call was abandoned, e.g.
    cancelled). Listeners run synchronously on each state change; their errors are logged.
    """

    __slots__ = (
        "_clock",
        "_failures",
        "_listeners",
        "_opened_at",
        "_probe_in_flight",
        "failure_threshold",
        "name",
        "reset_timeout",
        "state",
        "window",
    )

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        window: float = 10.0,
        reset_timeout: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if window <= 0:
            raise ValueError(f"window must be > 0 seconds, got {window}")
        if reset_timeout <= 0:
            raise ValueError(f"reset_timeout must be > 0 seconds, got {reset_timeout}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.window = window
        self.reset_timeout = reset_timeout
        self.state: BreakerState = "closed"
        """Current state: ``"closed"``, ``"open"`` or ``"half_open"``."""
        self._clock = clock
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._listeners: list[BreakerListener] = []

    @classmethod
    def from_settings(cls, name: str, settings: Settings) -> CircuitBreaker:
        """A breaker configured by ``breaker_failure_threshold/_window/_reset_timeout``."""
        return cls(
            name,
            failure_threshold=settings.breaker_failure_threshold,
            window=settings.breaker_window,
            reset_timeout=settings.breaker_reset_timeout,
        )

    # -- observation ---------------------------------------------------------------------------
    def add_listener(self, listener: BreakerListener) -> None:
        """Call ``listener(name, old_state, new_state)`` on every state change."""
        self._listeners.append(listener)

    def remove_listener(self, listener: BreakerListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    @property
    def retry_after(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when not open)."""
        if self.state != "open":
            return 0.0
        return max(0.0, self._opened_at + self.reset_timeout - self._clock())

    @property
    def failure_count(self) -> int:
        """Transient failures counted in the current window (closed state)."""
        self._trim(self._clock())
        return len(self._failures)

    # -- protocol ------------------------------------------------------------------------------
    def allow(self) -> bool:
        """True when a call may go to the backend now (takes the half-open probe slot)."""
        state = self.state
        if state == "closed":
            return True
        if state == "open":
            if self._clock() - self._opened_at < self.reset_timeout:
                return False
            self._set_state("half_open")
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def record_success(self) -> None:
        """The allowed call reached the backend (it answered, maybe with an error)."""
        if self.state != "closed":
            self._probe_in_flight = False
            self._failures.clear()
            self._set_state("closed")

    def record_failure(self, exc: BaseException | None = None) -> None:
        """The allowed call failed. Non-transient errors count as success (backend answered)."""
        if exc is not None and not is_transient(exc):
            self.record_success()
            return
        now = self._clock()
        if self.state == "half_open":
            self._probe_in_flight = False
            self._open(now)
            return
        if self.state == "open":
            return
        self._failures.append(now)
        self._trim(now)
        if len(self._failures) >= self.failure_threshold:
            self._open(now)

    def release(self) -> None:
        """The allowed call was abandoned (cancelled) without an outcome: free the probe slot."""
        self._probe_in_flight = False

    def trip(self) -> None:
        """Open the circuit now (e.g. a health check saw the backend go away)."""
        if self.state != "open":
            self._probe_in_flight = False
            self._open(self._clock())

    def reset(self) -> None:
        """Close the circuit and forget failures."""
        self._failures.clear()
        self._probe_in_flight = False
        self._set_state("closed")

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` through the breaker; raises :class:`CircuitOpen` while open."""
        if not self.allow():
            raise CircuitOpen(self.name, self.retry_after)
        try:
            result = await fn()
        except Exception as exc:
            self.record_failure(exc)
            raise
        except BaseException:
            self.release()
            raise
        self.record_success()
        return result

    # -- internals -----------------------------------------------------------------------------
    def _trim(self, now: float) -> None:
        horizon = now - self.window
        failures = self._failures
        while failures and failures[0] <= horizon:
            failures.popleft()

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._failures.clear()
        self._set_state("open")

    def _set_state(self, new: BreakerState) -> None:
        old = self.state
        if old == new:
            return
        self.state = new
        for listener in list(self._listeners):
            try:
                listener(self.name, old, new)
            except Exception:
                log.exception("circuit breaker %r listener failed", self.name)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state!r})"


class RetryPolicy:
    """Retry a coroutine after transient errors: exponential backoff with full jitter.

    ``attempts`` is the number of retries after the first try (0 = no retry). Delay ``n``
    (0-based) is uniform in ``[0, min(max_delay, base_delay * 2**n)]``.
    """

    __slots__ = ("attempts", "base_delay", "max_delay")

    def __init__(self, attempts: int = 3, base_delay: float = 0.05, max_delay: float = 2.0) -> None:
        if attempts < 0:
            raise ValueError(f"attempts must be >= 0, got {attempts}")
        if base_delay <= 0 or max_delay <= 0:
            raise ValueError("base_delay and max_delay must be > 0 seconds")
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """A policy configured by ``retry_attempts/_base_delay/_max_delay``."""
        return cls(settings.retry_attempts, settings.retry_base_delay, settings.retry_max_delay)

    def delays(self) -> Iterator[float]:
        """The successive jittered delays, one per retry."""
        for n in range(self.attempts):
            yield random.uniform(0.0, min(self.max_delay, self.base_delay * (2**n)))

    async def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()``, retrying transient errors; the last error propagates."""
        delays = self.delays()
        while True:
            try:
                return await fn()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                delay = next(delays, None)
                if delay is None:
                    raise
                await asyncio.sleep(delay)
