"""Blocking services for synchronous applications: :func:`create_sync_services`.

    with create_sync_services() as services:
        services.cache("sessions").set("user:1", {"name": "Ada"}, ttl=3600)
        services.queue("emails").enqueue("send_welcome", {"user": 1})

One :class:`SyncServices` holds one async :class:`~redkeep.services.Services` on a private
event loop that the calling threads drive (see :mod:`redkeep.sync.runner` for why). Fork-safe:
the services, and the caches and queues handed out before a fork, notice in the child that the
process changed and start fresh connections there on first use. What the child inherited from
its parent (sockets, the loop's epoll instance) is kept aside untouched: closing it would
unregister the parent's sockets from the epoll instance the two processes share.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from redkeep.config import Settings
from redkeep.errors import RedkeepError
from redkeep.monitoring.metrics import Metrics
from redkeep.services import Services
from redkeep.sync.cache import SyncCache
from redkeep.sync.queue import SyncQueue
from redkeep.sync.runner import LoopRunner, check_no_running_loop

__all__ = ["SyncServices", "create_sync_services"]

B = TypeVar("B", SyncCache, SyncQueue)

_instances: weakref.WeakSet[SyncServices] = weakref.WeakSet()
_inherited: list[Any] = []  # state from a parent process: kept alive, never used or closed


class _State:
    """What one process owns: the runner (its loop) and the async services on it."""

    def __init__(self, settings: Settings) -> None:
        self.pid = os.getpid()
        self.runner = LoopRunner()
        self.services = Services(settings)
        try:
            self.runner.run(self.services.start())
        except BaseException:
            self.runner.close()
            raise


class SyncServices:
    """Blocking caches and queues over one async :class:`~redkeep.services.Services`.

    Use as a context manager (or call :meth:`start` and :meth:`close`). Thread-safe and
    fork-safe; must not be used from inside a running event loop
    (:class:`~redkeep.sync.runner.AsyncContextError`): async code uses
    :func:`redkeep.create_services`.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self._lock = threading.Lock()
        self._state: _State | None = None
        self._closed = False
        self._caches: dict[str, SyncCache] = {}
        self._queues: dict[str, SyncQueue] = {}
        _instances.add(self)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> SyncServices:
        """Connect and validate the backend (as :meth:`Services.start`). Idempotent."""
        self._current()
        return self

    def close(self) -> None:
        """Close this process's connections and loop. Idempotent."""
        check_no_running_loop()
        with self._lock:
            self._closed = True
            state, self._state = self._state, None
        if state is None or state.pid != os.getpid():
            return  # nothing of this process's own to close
        try:
            state.runner.run(state.services.close())
        finally:
            state.runner.close()

    def __enter__(self) -> SyncServices:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _current(self) -> _State:
        state = self._state
        if state is not None and state.pid == os.getpid():
            return state
        check_no_running_loop()
        with self._lock:
            if self._closed:
                raise RedkeepError("sync services are closed")
            state = self._state
            if state is None or state.pid != os.getpid():
                if state is not None:
                    _inherited.append(state)  # forked: the parent's, not ours
                state = self._state = _State(self.settings)
            return state

    def _forked(self) -> None:
        self._lock = threading.Lock()  # a parent thread may have held it at fork time

    # -- components -----------------------------------------------------------------------------
    def cache(self, name: str = "default") -> SyncCache:
        """The named cache (created on first use; see :meth:`Services.cache`)."""
        return self._get(self._caches, SyncCache, name)

    def queue(self, name: str = "default") -> SyncQueue:
        """The named job queue (created on first use; see :meth:`Services.queue`)."""
        return self._get(self._queues, SyncQueue, name)

    def _get(self, made: dict[str, B], make: Callable[[SyncServices, str], B], name: str) -> B:
        """``made[name]``, created (and its name validated) on first use."""
        found = made.get(name)
        if found is None:
            found = make(self, name)
            found.aio  # noqa: B018 - create (and validate the name) now
            found = made.setdefault(name, found)
        return found

    @property
    def services(self) -> Services:
        """This process's async services (use them only through :meth:`run`)."""
        return self._current().services

    @property
    def metrics(self) -> Metrics:
        """This process's metrics (``metrics.render()`` for a Prometheus scrape)."""
        return self._current().services.metrics

    def run(self, coro_fn: Any, *args: Any) -> Any:
        """Run ``await coro_fn(*args)`` on this process's loop and return its result, e.g.
        ``services.run(services.services.queue("q").enqueue, "job")``. A way to reach parts of
        the async API that have no sync wrapper."""
        return self._current().runner.run(coro_fn(*args))

    def health(self) -> dict[str, Any]:
        """Readiness report (see :meth:`Services.health`)."""
        state = self._current()
        return state.runner.run(state.services.health())

    def refresh_metrics(self) -> None:
        """Snapshot cache stats, queue depth and connection state into :attr:`metrics`."""
        state = self._current()
        state.runner.run(state.services.refresh_metrics())

    def _bind(self, kind: str, name: str) -> tuple[LoopRunner, Any]:
        """This process's runner and its async ``kind`` (``cache`` or ``queue``) ``name``."""
        state = self._current()
        component = state.runner.run(_component(getattr(state.services, kind), name))
        return state.runner, component


async def _component(factory: Any, name: str) -> Any:
    """Build a cache or queue on the loop (its constructor may look for the running loop)."""
    return factory(name)


def create_sync_services(settings: Settings | None = None) -> SyncServices:
    """Blocking services for ``settings`` (default: from the environment); use as
    ``with create_sync_services() as services:``."""
    return SyncServices(settings)


def _after_fork_in_child() -> None:
    for instance in list(_instances):
        instance._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
