"""What :class:`~redkeep.sync.cache.SyncCache` and :class:`~redkeep.sync.queue.SyncQueue` share:
a named async component of :class:`~redkeep.sync.services.SyncServices`, bound to the runner of
the current process (bound again after a fork)."""

from __future__ import annotations

from os import getpid
from typing import TYPE_CHECKING, Generic, TypeVar

from redkeep.sync.runner import LoopRunner

if TYPE_CHECKING:
    from redkeep.sync.services import SyncServices

__all__ = ["Bound"]

A = TypeVar("A")


class Bound(Generic[A]):
    """One named cache or queue (``_kind``) of ``owner``, driven through its runner."""

    _kind: str
    """``"cache"`` or ``"queue"``: the :class:`~redkeep.services.Services` method that builds
    the async component."""

    def __init__(self, owner: SyncServices, name: str) -> None:
        self._owner = owner
        self._name = name
        self._pid = -1
        self._runner: LoopRunner | None = None
        self._aio: A | None = None

    def _bound(self) -> tuple[LoopRunner, A]:
        """This process's runner and async cache or queue (bound again after a fork)."""
        if self._pid != getpid() or self._aio is None or self._runner is None:
            self._runner, self._aio = self._owner._bind(self._kind, self._name)
            self._pid = getpid()
        return self._runner, self._aio

    @property
    def aio(self) -> A:
        """The underlying async cache or queue of this process (use it only on the services'
        loop)."""
        return self._bound()[1]

    @property
    def name(self) -> str:
        """The name of the cache or queue."""
        return self._name
