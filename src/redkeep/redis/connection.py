"""Connection manager: first connect with backoff, background health pings, state listeners.

States: ``connecting`` (before and during :meth:`ConnectionManager.start`), ``ready`` (the last
PING answered), ``degraded`` (the backend did not answer; callers use their fallbacks) and
``closed``. The manager does not own the client: closing the manager stops its background task,
closing the client is the caller's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Literal

from redis.backoff import EqualJitterBackoff

from redkeep.errors import is_transient, scrub
from redkeep.redis.base import RedisClient
from redkeep.redis.errors import translate_error

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["ConnectionManager", "ConnectionState", "StateListener"]

log = logging.getLogger(__name__)

ConnectionState = Literal["connecting", "ready", "degraded", "closed"]
StateListener = Callable[[str, str], None]
"""Called as ``listener(old_state, new_state)`` on every state change."""

# While degraded, probe at least this often so recovery is noticed quickly.
_DEGRADED_PROBE_INTERVAL = 1.0


class ConnectionManager:
    """Tracks whether ``client``'s backend is reachable.

    :meth:`start` pings with exponential backoff and jitter (redis-py ``EqualJitterBackoff``,
    ``retry_base_delay`` doubling up to ``retry_max_delay``) for at most ``connect_max_wait``
    seconds, then ends ``ready`` or ``degraded``; it never raises for backend errors. A
    background task pings every ``health_check_interval`` seconds (0 disables it), records
    :attr:`last_latency` and moves between ``ready`` and ``degraded``.
    """

    def __init__(self, client: RedisClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.state: ConnectionState = "connecting"
        self.last_latency: float | None = None
        """Seconds of the last successful PING round trip."""
        self.last_error: str | None = None
        """``"ErrorClass: message"`` of the last failed PING (scrubbed), None after success."""
        self.attempts = 0
        """PINGs made by :meth:`start`."""
        self._listeners: list[StateListener] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._backoff = EqualJitterBackoff(
            cap=settings.retry_max_delay, base=settings.retry_base_delay
        )

    # -- listeners -----------------------------------------------------------------------------
    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener(old, new)`` on every state change."""
        self._listeners.append(listener)

    def remove_listener(self, listener: StateListener) -> None:
        """Stop calling ``listener``."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _set_state(self, new: ConnectionState) -> None:
        old = self.state
        if old == new or (old == "closed" and new != "closed"):
            return
        self.state = new
        if new == "ready":
            self._ready.set()
        else:
            self._ready.clear()
        log.info("redis connection %s -> %s", old, new)
        for listener in list(self._listeners):
            try:
                listener(old, new)
            except Exception:
                log.exception("connection state listener failed")

    # -- probing -------------------------------------------------------------------------------
    async def _ping(self, limit: float | None = None) -> BaseException | None:
        """One PING; the translated error or None. Records latency and error text."""
        try:
            if limit is None:
                latency = await self.client.ping()
            else:
                async with asyncio.timeout(limit):
                    latency = await self.client.ping()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            err = translate_error(exc)
            self.last_error = f"{type(err).__name__}: {scrub(str(err))}"
            return err
        self.last_latency = latency
        self.last_error = None
        return None

    async def check(self) -> ConnectionState:
        """PING now and update the state (``closed`` stays closed)."""
        if self.state == "closed":
            return self.state
        s = self.settings
        err = await self._ping(limit=s.command_timeout + s.connect_timeout)
        self._set_state("ready" if err is None else "degraded")
        return self.state

    async def start(self) -> ConnectionState:
        """Connect (bounded by ``connect_max_wait``) and start health pings; the state reached."""
        if self.state == "closed":
            raise RuntimeError("ConnectionManager is closed")
        if self._task is not None or self.state != "connecting":
            return self.state
        deadline = monotonic() + self.settings.connect_max_wait
        failures = 0
        while True:
            remaining = deadline - monotonic()
            self.attempts += 1
            err = await self._ping(limit=remaining if failures and remaining > 0 else None)
            if err is None:
                self._set_state("ready")
                break
            if not is_transient(err):  # wrong password, bad URL: waiting will not help
                log.warning("redis connection failed: %s", self.last_error)
                self._set_state("degraded")
                break
            delay = self._backoff.compute(failures)
            failures += 1
            remaining = deadline - monotonic()
            if remaining <= 0:
                log.warning("redis not reachable after %d attempts: %s", failures, self.last_error)
                self._set_state("degraded")
                break
            await asyncio.sleep(min(delay, remaining))
        if self.settings.health_check_interval > 0:
            self._task = asyncio.create_task(self._health_loop(), name="redkeep-health-ping")
        return self.state

    async def _health_loop(self) -> None:
        interval = self.settings.health_check_interval
        while True:
            wait = interval if self.state == "ready" else min(interval, _DEGRADED_PROBE_INTERVAL)
            await asyncio.sleep(wait)
            await self.check()

    async def wait_ready(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the ``ready`` state; True when reached."""
        try:
            async with asyncio.timeout(seconds):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop the health task (awaited, nothing left pending) and enter ``closed``."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_state("closed")

    def __repr__(self) -> str:
        return f"ConnectionManager(state={self.state!r}, transport={self.client.transport!r})"
