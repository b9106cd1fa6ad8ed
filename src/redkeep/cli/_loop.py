"""Event loop choice for the long-running commands (``serve``, ``worker``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["run"]

T = TypeVar("T")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when it is installed (``redkeep[fast]``), else on asyncio's loop.

    uvloop cuts the per-job overhead of a worker by roughly a third; it is optional so that the
    base install stays pure Python plus redis-py/hiredis.
    """
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)
