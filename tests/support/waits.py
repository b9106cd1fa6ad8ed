"""Condition waits for tests: poll until a condition holds, fail naming what was awaited.

Tests never sleep a fixed time and then assert (on a loaded machine the sleep is too short,
everywhere else too long): they wait for the condition with a generous deadline, which costs
nothing when things go well. On timeout the failure says what was awaited and for how long::

    await wait_until(lambda: len(started) == 2, what="both jobs to start")  # sync predicate
    await wait_until(worker_is_idle, timeout=30, what="the worker to register idle")  # async
    wait_until_sync(lambda: proc.poll() is not None, what="the child to exit")
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

__all__ = ["DEFAULT_TIMEOUT", "wait_until", "wait_until_sync"]

DEFAULT_TIMEOUT = 10.0


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    interval: float = 0.02,
    what: str = "condition",
) -> float:
    """Poll ``predicate`` (sync, or returning an awaitable) every ``interval`` seconds until it
    is true; returns the seconds waited. Raises ``AssertionError`` naming ``what`` after
    ``timeout`` seconds (the predicate is always checked once more at the deadline)."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - start
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(min(interval, left))


def wait_until_sync(
    predicate: Callable[[], bool],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    interval: float = 0.02,
    what: str = "condition",
) -> float:
    """:func:`wait_until` for synchronous tests (blocks the thread between checks)."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if predicate():
            return time.monotonic() - start
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(min(interval, left))
