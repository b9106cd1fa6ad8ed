"""Blocking calls into redkeep's async services: :class:`LoopRunner`.

Why an event loop that the calling threads drive, and not the other two designs:

- redis-py's sync client would mean a second implementation of every cache and queue operation
  (key layout, Lua scripts, fallback with replay, breaker, single-flight), drifting from the
  async one as the queue and cache evolve. Driving the async services gives the same behaviour
  by construction.
- A private event-loop thread (``run_coroutine_threadsafe(...).result()``) costs two thread
  wake-ups per call. Measured on the 2-vCPU development VM (loopback Redis, 100 B values,
  medians of 5 rounds): redkeep get through a loop thread 6,000 ops/s, raw redis-py sync + json
  18,000 ops/s, the same redkeep get run by the calling thread itself
  (``loop.run_until_complete``) 24,000 ops/s. ``bench/sync_bench.py`` keeps the loop-thread
  design as its ``loop_thread`` backend for the comparison (0.54-0.60x of raw redis-py there).

So the calling thread runs the loop itself: a thread that finds the loop idle becomes its
*leader* and runs it until its own call is done. A thread that arrives while another leads is a
*follower*: it hands its coroutine to the loop (``call_soon_threadsafe``) and sleeps until the
coroutine is done, or until the loop is free, in which case it takes over as leader. Every
call therefore runs on the one loop, so all of the async stack's state (connections, breaker,
fallback memory, single-flight, metrics) is shared by every thread without locks of its own,
and concurrent callers are pipelined on the shared connection. Background tasks (fallback
recovery, reconnection) advance whenever any thread runs the loop.

A call can ask to run a blocking function in *its caller's* thread (:meth:`LoopRunner.in_caller`):
``get_or_set`` runs its factory that way, so the factory keeps the caller's thread-locals (a
Django database connection, a transaction) and may itself use the sync API.

Not usable from a thread that runs an event loop (:class:`AsyncContextError`): the call would
block that loop, and from inside this runner's own loop it would wait for itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from redkeep.errors import RedkeepError

__all__ = ["AsyncContextError", "LoopRunner", "check_no_running_loop"]

T = TypeVar("T")


class AsyncContextError(RedkeepError, RuntimeError):
    """A blocking ``redkeep.sync`` call was made from a thread that runs an event loop."""


def check_no_running_loop(what: str = "redkeep.sync") -> None:
    """Raise :class:`AsyncContextError` when the current thread runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise AsyncContextError(
        f"{what} blocks, and was called from inside a running event loop: in async code "
        "use the async API (redkeep.create_services) instead"
    )


class _Call:
    """One call submitted by a follower (or one that may ask for its caller's thread)."""

    __slots__ = ("cond", "done", "error", "request", "result", "signal")

    def __init__(self, lock: threading.Lock) -> None:
        self.cond = threading.Condition(lock)
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.request: tuple[Callable[[], Any], asyncio.Future[Any]] | None = None
        self.signal: asyncio.Future[None] | None = None  # wakes this call's thread as leader


_current_call: contextvars.ContextVar[_Call] = contextvars.ContextVar("redkeep_sync_call")


class LoopRunner:
    """Runs coroutines to completion on one event loop, driven by the calling threads.

    Thread-safe. Bound to the process that created it (:attr:`pid`): after ``os.fork`` the child
    must build a new runner and leave this one untouched (its loop's epoll instance and sockets
    are shared with the parent).
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._leading = False
        self._waiting: dict[_Call, None] = {}  # followers in arrival order

    # -- public ---------------------------------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and return its result (or raise its exception)."""
        self._check(coro)
        with self._lock:
            lead = not self._leading
            if lead:
                self._leading = True
        if not lead:
            call = _Call(self._lock)
            self.loop.call_soon_threadsafe(self._start, call, coro)
            return self._drive(call)  # type: ignore[no-any-return]
        try:
            return self.loop.run_until_complete(coro)
        finally:
            self._release()

    def run_with_caller(self, coro: Coroutine[Any, Any, T]) -> T:
        """Like :meth:`run`, for a coroutine that may call :meth:`in_caller`."""
        self._check(coro)
        call = _Call(self._lock)
        self.loop.call_soon_threadsafe(self._start, call, coro)
        return self._drive(call)  # type: ignore[no-any-return]

    async def in_caller(self, fn: Callable[[], T]) -> T:
        """From a coroutine started by :meth:`run_with_caller` in the current task's context:
        run the blocking ``fn()`` in the thread that made the call, and return its result."""
        call: _Call | None = _current_call.get(None)
        if call is None:
            raise RuntimeError("in_caller() outside a run_with_caller() call")
        fut: asyncio.Future[T] = self.loop.create_future()
        with self._lock:
            call.request = (fn, fut)
            call.cond.notify()
        if call.signal is not None and not call.signal.done():
            call.signal.set_result(None)  # the caller is leading: stop the loop for it
        return await fut

    def close(self) -> None:
        """Close the loop (after the services on it were closed)."""
        if not self.loop.is_closed():
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    # -- internals ------------------------------------------------------------------------------
    def _check(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Refuse to run (closing ``coro``, so it warns of nothing) from an event loop's thread
        or after :meth:`close`."""
        try:
            check_no_running_loop()
            if self.loop.is_closed():
                raise RedkeepError("sync services are closed")
        except BaseException:
            coro.close()
            raise

    def _start(self, call: _Call, coro: Coroutine[Any, Any, Any]) -> None:
        token = _current_call.set(call)
        try:
            task = self.loop.create_task(coro)
        finally:
            _current_call.reset(token)
        task.add_done_callback(lambda t: self._finish(call, t))

    def _finish(self, call: _Call, task: asyncio.Task[Any]) -> None:
        with self._lock:
            call.done = True
            if task.cancelled():
                call.error = asyncio.CancelledError()
            else:
                call.error = task.exception()
                if call.error is None:
                    call.result = task.result()
            call.cond.notify()
        if call.signal is not None and not call.signal.done():
            call.signal.set_result(None)

    def _release(self) -> None:
        with self._lock:
            self._leading = False
            for waiter in self._waiting:  # one follower takes over (see _drive)
                waiter.cond.notify()
                break

    def _drive(self, call: _Call) -> Any:
        """Wait for ``call``: lead the loop when it is free, run requests for the caller."""
        while True:
            with self._lock:
                while True:
                    if call.done:
                        if not self._leading:  # pass on the wake-up this thread may have taken
                            for waiter in self._waiting:
                                waiter.cond.notify()
                                break
                        if call.error is not None:
                            raise call.error
                        return call.result
                    request = call.request
                    if request is not None:
                        call.request = None
                        break
                    if not self._leading:
                        self._leading = True
                        break
                    self._waiting[call] = None
                    try:
                        call.cond.wait()
                    finally:
                        self._waiting.pop(call, None)
            if request is not None:
                self._answer(*request)
                continue
            try:
                self.loop.run_until_complete(self._until_signal(call))
            finally:
                self._release()

    async def _until_signal(self, call: _Call) -> None:
        call.signal = self.loop.create_future()
        if not call.done and call.request is None:
            await call.signal

    def _answer(self, fn: Callable[[], Any], fut: asyncio.Future[Any]) -> None:
        try:
            result = fn()
        except BaseException as exc:  # handed to the waiting coroutine, which re-raises it
            self.loop.call_soon_threadsafe(_settle, fut, None, exc)
        else:
            self.loop.call_soon_threadsafe(_settle, fut, result, None)


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)
