"""CircuitBreaker and RetryPolicy logic.

The breaker's own state machine is tested with a fake clock (allowed by the developer guide for
the breaker's logic); no backend is involved here.
"""

from __future__ import annotations

import asyncio

import pytest

from redkeep.config import Settings
from redkeep.errors import (
    BackendResponseError,
    BackendTimeout,
    BackendUnavailable,
    CircuitOpen,
)
from redkeep.resilience import CircuitBreaker, RetryPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    threshold: int = 3, window: float = 10.0, reset: float = 5.0
) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    return CircuitBreaker("t", threshold, window, reset, clock=clock), clock


def test_opens_after_threshold_transient_failures_in_window() -> None:
    b, _ = make(threshold=3)
    for _ in range(2):
        assert b.allow()
        b.record_failure(BackendUnavailable("down"))
    assert b.state == "closed"
    assert b.allow()
    b.record_failure(BackendTimeout("slow"))
    assert b.state == "open"
    assert not b.allow()


def test_failures_outside_window_do_not_count() -> None:
    b, clock = make(threshold=3, window=10.0)
    b.record_failure(BackendUnavailable("x"))
    b.record_failure(BackendUnavailable("x"))
    clock.now += 10.5
    b.record_failure(BackendUnavailable("x"))
    assert b.state == "closed"
    assert b.failure_count == 1


def test_non_transient_errors_never_open() -> None:
    b, _ = make(threshold=1)
    for _ in range(5):
        b.record_failure(BackendResponseError("WRONGTYPE Operation against a key"))
        b.record_failure(ValueError("bad input"))
    assert b.state == "closed"


def test_busy_response_counts_as_transient() -> None:
    b, _ = make(threshold=1)
    b.record_failure(BackendResponseError("LOADING Redis is loading the dataset in memory"))
    assert b.state == "open"


def test_half_open_single_probe_then_close_on_success() -> None:
    b, clock = make(threshold=1, reset=5.0)
    b.record_failure(BackendUnavailable("x"))
    assert b.state == "open"
    clock.now += 4.9
    assert not b.allow()
    assert b.retry_after == pytest.approx(0.1)
    clock.now += 0.2
    assert b.allow()  # the probe
    assert b.state == "half_open"
    assert not b.allow()  # only one probe at a time
    assert not b.allow()
    b.record_success()
    assert b.state == "closed"
    assert b.allow()


def test_half_open_probe_failure_reopens_for_full_reset_timeout() -> None:
    b, clock = make(threshold=1, reset=5.0)
    b.record_failure(BackendUnavailable("x"))
    clock.now += 5.0
    assert b.allow()
    b.record_failure(BackendUnavailable("still down"))
    assert b.state == "open"
    clock.now += 4.0
    assert not b.allow()
    clock.now += 1.0
    assert b.allow()


def test_released_probe_frees_slot() -> None:
    b, clock = make(threshold=1)
    b.record_failure(BackendUnavailable("x"))
    clock.now += 5.0
    assert b.allow()
    b.release()
    assert b.state == "half_open"
    assert b.allow()


def test_listeners_see_every_transition_once_and_errors_are_contained() -> None:
    b, clock = make(threshold=2)
    seen: list[tuple[str, str, str]] = []
    b.add_listener(lambda name, old, new: seen.append((name, old, new)))

    def broken(name: str, old: str, new: str) -> None:
        raise RuntimeError("listener bug")

    b.add_listener(broken)
    for _ in range(4):
        b.record_failure(BackendUnavailable("x"))
    clock.now += 5.0
    b.allow()
    b.record_success()
    assert seen == [
        ("t", "closed", "open"),
        ("t", "open", "half_open"),
        ("t", "half_open", "closed"),
    ]


async def test_call_raises_circuit_open_and_passes_results() -> None:
    b, clock = make(threshold=1)

    async def ok() -> int:
        return 7

    async def down() -> int:
        raise BackendUnavailable("refused")

    assert await b.call(ok) == 7
    with pytest.raises(BackendUnavailable):
        await b.call(down)
    with pytest.raises(CircuitOpen) as info:
        await b.call(ok)
    assert info.value.name == "t"
    assert 0 < info.value.retry_after <= 5.0
    clock.now += 5.0
    assert await b.call(ok) == 7
    assert b.state == "closed"


async def test_cancelled_probe_releases_slot() -> None:
    b, clock = make(threshold=1)
    b.record_failure(BackendUnavailable("x"))
    clock.now += 5.0
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.sleep(60)

    task = asyncio.create_task(b.call(hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.allow()


def test_trip_and_reset() -> None:
    b, _ = make()
    b.trip()
    assert b.state == "open"
    b.reset()
    assert b.state == "closed"
    assert b.failure_count == 0


def test_from_settings_and_validation() -> None:
    s = Settings(breaker_failure_threshold=7, breaker_window=3.0, breaker_reset_timeout=1.5)
    b = CircuitBreaker.from_settings("redis", s)
    assert (b.failure_threshold, b.window, b.reset_timeout) == (7, 3.0, 1.5)
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ValueError, match="reset_timeout"):
        CircuitBreaker("x", reset_timeout=0)


def test_retry_delays_are_jittered_and_capped() -> None:
    p = RetryPolicy(attempts=6, base_delay=0.1, max_delay=0.5)
    delays = list(p.delays())
    assert len(delays) == 6
    caps = [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]
    assert all(0 <= d <= c for d, c in zip(delays, caps, strict=True))


async def test_retry_runs_until_success_and_stops_on_non_transient() -> None:
    p = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.002)
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise BackendTimeout("slow")
        return "ok"

    assert await p.run(flaky) == "ok"
    assert calls == 3

    calls = 0

    async def broken() -> str:
        nonlocal calls
        calls += 1
        raise BackendResponseError("WRONGTYPE")

    with pytest.raises(BackendResponseError):
        await p.run(broken)
    assert calls == 1

    calls = 0

    async def always_down() -> str:
        nonlocal calls
        calls += 1
        raise BackendUnavailable("refused")

    with pytest.raises(BackendUnavailable):
        await p.run(always_down)
    assert calls == 4
