"""tests/support/waits.py: condition waits return once the condition holds and fail naming what
they waited for."""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.waits import wait_until, wait_until_sync


async def test_wait_until_accepts_sync_and_async_predicates_and_returns_the_time_waited() -> None:
    calls = 0

    def third_call() -> bool:
        nonlocal calls
        calls += 1
        return calls >= 3

    async def already() -> bool:
        return True

    waited = await wait_until(third_call, timeout=5, interval=0.01, what="the third call")
    assert calls == 3 and 0 < waited < 5
    assert await wait_until(already, what="nothing") < 1


async def test_wait_until_fails_after_the_timeout_naming_what_it_waited_for() -> None:
    start = time.monotonic()
    with pytest.raises(AssertionError, match=r"timed out after 0\.2s waiting for the answer"):
        await wait_until(lambda: False, timeout=0.2, interval=0.05, what="the answer")
    assert time.monotonic() - start >= 0.2


def test_wait_until_sync_sees_a_change_made_by_another_thread() -> None:
    flag = threading.Event()
    threading.Timer(0.05, flag.set).start()
    assert wait_until_sync(flag.is_set, timeout=10, what="the timer") >= 0.04
    with pytest.raises(AssertionError, match="waiting for the impossible"):
        wait_until_sync(lambda: False, timeout=0.05, what="the impossible")
