"""Where a handler runs, and the worker slots each kind of run holds.

- **Async handlers** run as tasks on the worker's event loop; a timeout or a cancellation
  cancels them.
- **Sync handlers** run on a pool of ``concurrency`` threads, each call in a copy of the
  worker task's context variables (as ``asyncio.to_thread``). Python threads cannot be killed:
  when an attempt times out (or is cancelled, released or loses its lease) the job gets its
  outcome at once, but the thread runs on and keeps its worker slot until it returns. Such
  *stuck* threads are counted (:attr:`ThreadRunner.stuck`, logs, the
  ``redkeep_worker_stuck_threads`` gauge), the worker starts no new job in their slots, and a
  retry of the same job waits in this worker until the old attempt's thread has returned. A
  timeout counts from the moment a thread starts the handler, never the time spent waiting
  for one.
- **Process handlers** (:func:`in_process`, or ``Worker(executor="process")`` for every sync
  handler) run in child processes (:mod:`redkeep.queue.processes`), which *can* be killed: a
  timeout or a cancellation kills the process and a fresh one takes its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from redkeep.errors import InvalidJob
from redkeep.queue.job import Job, JobFailure, encode_value

if TYPE_CHECKING:
    from redkeep.queue.execution import WorkerObserver
    from redkeep.queue.processes import ProcessPool

__all__ = [
    "ExecutorKind",
    "Executors",
    "HandlerFailed",
    "ProcessHandler",
    "StuckThread",
    "ThreadRunner",
    "handler_ref",
    "in_process",
    "is_async_handler",
    "prepare_handlers",
]

log = logging.getLogger("redkeep.queue.worker")

ExecutorKind = Literal["thread", "process"]
"""Where a worker runs its sync handlers."""
T = TypeVar("T")


class HandlerFailed(Exception):
    """An attempt failed somewhere its exception object cannot come from (a child process):
    carries the failure to record as is."""

    def __init__(self, failure: JobFailure) -> None:
        super().__init__(f"{failure.type}: {failure.message}")
        self.failure = failure


# -- handlers --------------------------------------------------------------------------------
_ASYNC_CACHE: dict[int, tuple[Callable[..., Any], bool]] = {}


def is_async_handler(handler: Callable[..., Any]) -> bool:
    """True for coroutine functions (also behind functools.partial or an async __call__)."""
    cached = _ASYNC_CACHE.get(id(handler))
    if cached is not None and cached[0] is handler:
        return cached[1]
    target = getattr(handler, "func", handler)  # functools.partial
    result = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )
    if len(_ASYNC_CACHE) < 10_000:
        _ASYNC_CACHE[id(handler)] = (handler, result)
    return result


def handler_ref(func: Callable[..., Any]) -> str:
    """``module:qualname`` of a handler a child process can import; InvalidJob otherwise."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    what = getattr(func, "__name__", None) or type(func).__name__
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise InvalidJob(
            f"handler {what!r} cannot run in a process: it must be a function defined at module "
            "level (a child process imports it by name)"
        )
    if module == "__main__" or "<" in qualname:
        where = "in __main__" if module == "__main__" else "inside a function or as a lambda"
        raise InvalidJob(
            f"handler {module}:{qualname} cannot run in a process: it is defined {where}; "
            "define it at module level in an importable module"
        )
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidJob(f"handler {module}:{qualname} cannot be imported by name: {exc}") from None
    if found is not func:
        raise InvalidJob(f"{module}:{qualname} names another object than the handler given")
    return f"{module}:{qualname}"


@dataclass(frozen=True)
class ProcessHandler:
    """A handler that runs in a child process of the worker (see :func:`in_process`)."""

    func: Callable[[Job], Any]
    ref: str
    """``module:qualname`` the child imports."""

    def __call__(self, job: Job) -> Any:
        """Call the handler here, in this process (for tests and direct use)."""
        return self.func(job)


def in_process(func: Callable[[Job], Any]) -> ProcessHandler:
    """Mark ``func`` to run in a child process of the worker, where a timeout kills it.

    ``func`` must be importable by name (a module-level function); the child receives the job
    and returns the result as JSON, never pickle. Raises :class:`InvalidJob` otherwise.
    """
    if isinstance(func, ProcessHandler):
        return func
    return ProcessHandler(func, handler_ref(func))


def prepare_handlers(
    handlers: Mapping[str, Callable[..., Any]], executor: ExecutorKind
) -> dict[str, Callable[..., Any]]:
    """The handlers a worker runs: with ``executor="process"`` every sync one in a process."""
    if executor not in ("thread", "process"):
        raise InvalidJob(f"executor must be 'thread' or 'process', got {executor!r}")
    if executor == "thread":
        return dict(handlers)
    return {name: fn if is_async_handler(fn) else in_process(fn) for name, fn in handlers.items()}


# -- threads ---------------------------------------------------------------------------------
@dataclass
class StuckThread:
    """A handler thread still running after its attempt ended: it holds a worker slot."""

    job_id: str
    queue: str
    handler: str
    since: float
    """``time.monotonic()`` when the attempt ended without it."""
    future: Future[Any]


class ThreadRunner:
    """Sync handlers on up to ``size`` threads, counting threads that outlive their attempt."""

    def __init__(
        self, size: int, observer: WorkerObserver | None, on_return: Callable[[], None]
    ) -> None:
        self.size = size
        self.stuck: dict[str, StuckThread] = {}
        """Stuck threads by job id."""
        self._observer = observer
        self._on_return = on_return
        self._pool: ThreadPoolExecutor | None = None

    async def run(self, handler: Callable[[Job], Any], job: Job) -> Any:
        """Call ``handler(job)`` in a thread; its ``timeout`` counts from the thread's start."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.size, thread_name_prefix="redkeep-job")
        started: list[float] = []

        def call() -> Any:
            started.append(time.monotonic())
            return handler(job)

        # The thread runs in a copy of this task's context variables, as asyncio.to_thread
        # does, so a handler sees what its caller set (progress_sync(), the current trace span).
        future = self._pool.submit(contextvars.copy_context().run, call)
        waiter = asyncio.wrap_future(future)
        timeout = job.timeout
        try:
            if timeout is None:
                return await waiter
            left = timeout
            while True:
                done, _ = await asyncio.wait((waiter,), timeout=left)
                if done:
                    return waiter.result()
                if started:  # else it is still waiting for a thread: that time does not count
                    left = started[0] + timeout - time.monotonic()
                    if left <= 0:
                        break
        except asyncio.CancelledError:
            future.cancel()  # a handler that has not started yet never will
            self._hold(job, future, "was stopped")
            raise
        self._hold(job, future, f"passed its timeout of {timeout:g} s")
        raise TimeoutError(
            f"handler {job.name!r} ran longer than its timeout of {timeout:g} s (its thread "
            "cannot be stopped and keeps its worker slot until it returns)"
        )

    def _hold(self, job: Job, future: Future[Any], why: str) -> None:
        """Keep the slot of a thread that runs on after its attempt ended."""
        if future.done():
            return
        loop = asyncio.get_running_loop()
        stuck = StuckThread(job.id, job.queue, job.name, time.monotonic(), future)
        self.stuck[job.id] = stuck
        log.warning(
            "job %s: handler %r %s; Python threads cannot be killed, so its thread keeps running "
            "and holds a worker slot until it returns (%d stuck threads)",
            job.id, job.name, why, len(self.stuck),
            extra={"job_id": job.id, "handler": job.name, "queue": job.queue},
        )  # fmt: skip

        def returned(_: Future[Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                loop.call_soon_threadsafe(self._returned, stuck)

        future.add_done_callback(returned)
        self._notify(stuck, 1)

    def _returned(self, stuck: StuckThread) -> None:
        if self.stuck.get(stuck.job_id) is stuck:
            del self.stuck[stuck.job_id]
        log.info(
            "job %s: the stuck thread of handler %r returned after %.1f s more; its slot is free",
            stuck.job_id, stuck.handler, time.monotonic() - stuck.since,
            extra={"job_id": stuck.job_id, "handler": stuck.handler, "queue": stuck.queue},
        )  # fmt: skip
        self._notify(stuck, -1)
        self._on_return()

    def _notify(self, stuck: StuckThread, delta: int) -> None:
        hook = getattr(self._observer, "on_stuck_thread", None)  # an optional observer hook
        if hook is not None:
            try:
                hook(stuck.queue, stuck.handler, delta)
            except Exception:
                log.exception("worker observer failed")

    def waiters(self) -> list[asyncio.Future[Any]]:
        """Futures done when the stuck threads return (a stop waits for them in its grace)."""
        return [asyncio.wrap_future(s.future) for s in self.stuck.values()]

    def warn_left_running(self, worker_id: str) -> None:
        """At the end of a stop: say which threads the process still waits for."""
        if self.stuck:
            log.warning(
                "worker %s: %d handler threads still running (jobs %s): Python threads cannot "
                "be killed; the interpreter waits for them at exit",
                worker_id, len(self.stuck), ", ".join(self.stuck),
            )  # fmt: skip

    def shutdown(self) -> None:
        """Let the pool's threads end once idle (stuck ones are not waited for)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


# -- dispatch --------------------------------------------------------------------------------
class Executors:
    """Runs one attempt of a handler where it belongs; returns the JSON-encoded result."""

    def __init__(
        self,
        concurrency: int,
        max_result_bytes: int,
        observer: WorkerObserver | None,
        on_slot_free: Callable[[], None],
    ) -> None:
        self.concurrency = concurrency
        self.max_result_bytes = max_result_bytes
        self.threads = ThreadRunner(concurrency, observer, on_slot_free)
        self._processes: ProcessPool | None = None

    @property
    def held(self) -> int:
        """Worker slots held by stuck threads."""
        return len(self.threads.stuck)

    def next(self, buffer: deque[tuple[T, Job]], running: int) -> tuple[T, Job] | None:
        """Remove and return the next buffered job to start while ``running`` jobs run, or None
        when every slot is taken (stuck threads hold theirs). A retry whose earlier attempt's
        thread still runs here is skipped: it waits for that thread."""
        stuck = self.threads.stuck
        if running + len(stuck) >= self.concurrency or not buffer:
            return None
        if not stuck:
            return buffer.popleft()
        for i, item in enumerate(buffer):
            if item[1].id not in stuck:
                del buffer[i]
                return item
        return None

    async def run(self, handler: Callable[[Job], Any], job: Job) -> str:
        """Run ``handler`` for ``job`` and encode its result; the handler's exception, a
        :class:`TimeoutError`, or :class:`HandlerFailed` for a failure in a child process."""
        if isinstance(handler, ProcessHandler):
            if self._processes is None:
                from redkeep.queue.processes import ProcessPool

                self._processes = ProcessPool(self.max_result_bytes)
            return await self._processes.run(handler.ref, job)
        if is_async_handler(handler):
            result = await _run_async(handler(job), job)
        else:
            result = await self.threads.run(handler, job)
            if inspect.isawaitable(result):
                result = await _run_async(result, job)
        if result is None and self.max_result_bytes >= 4:
            return "null"  # what the serializer writes, without its checks (most handlers)
        return encode_value(result, self.max_result_bytes, "result")

    async def close(self) -> None:
        """Stop the child processes and let idle threads end."""
        self.threads.shutdown()
        if self._processes is not None:
            await self._processes.close()
            self._processes = None


async def _run_async(call: Awaitable[Any], job: Job) -> Any:
    if job.timeout is None:
        return await call
    try:
        async with asyncio.timeout(job.timeout) as scope:
            return await call
    except TimeoutError:
        if scope.expired():
            raise TimeoutError(
                f"handler {job.name!r} ran longer than its timeout of {job.timeout:g} s "
                "(it was cancelled)"
            ) from None
        raise
