"""Scenario 3: Redis hang. The private redis-server is SIGSTOPped for a few seconds under load.

While Redis is frozen a :class:`FallbackCache` must answer every call (from memory) with p99 at
most ``command_timeout`` + 10 ms, and its breaker must open. After SIGCONT the breaker must close
again within its reset timeout (plus one probe round trip and the replay of the keys written
during the outage). Worker processes busy with jobs when Redis froze must resume; no job is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redkeep.cache import FallbackCache, RedisCache
from redkeep.queue import JobSpec, RedisJobQueue
from redkeep.redis.mux import MuxClient
from redkeep.resilience import CircuitBreaker
from tests.reliability.harness import Figures, Latencies, scale, wait_until
from tests.reliability.jobs import all_finished, run_counts, statuses
from tests.reliability.processes import WorkerPool

pytestmark = pytest.mark.slow

HANG = scale(3.0, 5.0)
COMMAND_TIMEOUT = 0.3
RESET_TIMEOUT = 1.0
REPLAY_ALLOWANCE = 0.5  # one PING plus replaying at most KEYS keys, on a loaded 2-core machine
CALLERS = 20
KEYS = 200
JOBS = scale(300, 600)
JOB_SECONDS = 0.2
LEASE = 2.0
DRAIN = scale(30.0, 60.0)


@pytest.mark.timeout(HANG + DRAIN + 60)
async def test_redis_sigstop_fallback_answers_and_workers_resume(
    redis_server_factory: Callable[..., Any],
    figures: Callable[[str, str], Figures],
    tmp_path: Path,
) -> None:
    fig = figures("redis_hang", "Redis SIGSTOP: FallbackCache latency, breaker, workers resume")
    fig.bounds(
        hang_s=HANG, command_timeout_s=COMMAND_TIMEOUT, reset_timeout_s=RESET_TIMEOUT,
        callers=CALLERS, jobs=JOBS, lease_s=LEASE,
    )  # fmt: skip
    server = redis_server_factory()
    client = MuxClient(server.url, command_timeout=COMMAND_TIMEOUT, connect_timeout=1.0)
    fig.meta(redis_version=(await client.info("server"))["redis_version"])
    breaker = CircuitBreaker("cache:hang", failure_threshold=3, window=10.0,
                             reset_timeout=RESET_TIMEOUT)  # fmt: skip
    transitions: list[tuple[float, str]] = []
    breaker.add_listener(lambda _name, _old, new: transitions.append((time.monotonic(), new)))
    cache = FallbackCache(RedisCache(client, "hang", key_prefix="rel"), breaker=breaker)

    queue = RedisJobQueue(client, "hang", key_prefix="rel", max_attempts=1000)
    ids = {j.id for j in await queue.enqueue_many(JobSpec("record") for _ in range(JOBS))}
    pool = WorkerPool(
        2,
        ["--url", server.url, "--queue", "hang", "--key-prefix", "rel", "--runs-key", "rel:runs",
         "--lease", str(LEASE), "--job-seconds", str(JOB_SECONDS)],
        tmp_path,
    )  # fmt: skip

    latencies = Latencies()
    started: list[float] = []  # monotonic start of each call, parallel to latencies.samples
    errors: list[str] = []
    stop = asyncio.Event()

    async def caller(c: int) -> None:
        n = 0
        while not stop.is_set():
            key = f"k{(c * 7919 + n) % KEYS}"
            start = time.perf_counter()
            started.append(time.monotonic())
            try:
                if n % 3 == 0:
                    await cache.set(key, {"c": c, "n": n})
                else:
                    await cache.get(key)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            latencies.add(time.perf_counter() - start)
            n += 1
            await asyncio.sleep(0.005)

    callers = [asyncio.create_task(caller(c)) for c in range(CALLERS)]
    try:
        pool.start()
        await asyncio.sleep(1.0)
        server.pause()
        paused_at = time.monotonic()
        await asyncio.sleep(HANG)
        opened = [t for t, s in transitions if s == "open" and t >= paused_at]
        mode_during_hang = cache.mode
        server.resume()
        resumed_at = time.monotonic()
        closed_after = await wait_until(
            _async(lambda: breaker.state == "closed" and cache.mode == "redis"),
            timeout=RESET_TIMEOUT + 10.0, interval=0.01, what="breaker closed after SIGCONT",
        )  # fmt: skip
        closed = [t for t, s in transitions if s == "closed" and t >= resumed_at]
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(*callers, return_exceptions=True)

    try:
        drained = await wait_until(
            lambda: all_finished(queue, JOBS), timeout=DRAIN, interval=0.2, what="jobs done"
        )
        status = await statuses(queue)
        runs = await run_counts(client, "rel:runs")
    except BaseException:
        print(pool.logs())
        raise
    finally:
        pool.close()
    await cache.close()
    await client.close()

    lost = sorted(i for i in ids if status.get(i) != "completed")
    # The half-open probe that closed the breaker: its start splits the wait for the reset
    # timeout from the recovery work (PING and replay of keys written during the outage).
    probes = [t for t, s in transitions if s == "half_open" and (not closed or t <= closed[0])]
    summary = latencies.summary()
    frozen = Latencies(
        [lat for t, lat in zip(started, latencies.samples, strict=True)
         if paused_at <= t < resumed_at]
    ).summary()  # fmt: skip
    fig.record(
        calls=summary["count"], errors=len(errors), p50_ms=summary["p50_ms"],
        p99_ms=summary["p99_ms"], max_ms=summary["max_ms"], hang_calls=frozen["count"],
        hang_p99_ms=frozen["p99_ms"], hang_max_ms=frozen["max_ms"],
        breaker_opened_after_s=round(opened[0] - paused_at, 3) if opened else None,
        breaker_closed_after_resume_s=round(closed_after, 3),
        last_probe_after_resume_s=round(probes[-1] - resumed_at, 3) if probes else None,
        probe_to_closed_s=round(closed[0] - probes[-1], 3) if probes and closed else None,
        jobs=JOBS, lost=len(lost), duplicates=sum(max(0, v - 1) for v in runs.values()),
        drain_s=round(drained, 1),
    )  # fmt: skip
    assert not errors, f"{len(errors)} cache calls raised, e.g. {errors[:3]}"
    assert mode_during_hang == "fallback"
    assert opened, "the breaker never opened while Redis was frozen"
    assert summary["p99_ms"] <= (COMMAND_TIMEOUT + 0.010) * 1000, summary
    assert frozen["count"] > 100 and frozen["p99_ms"] <= (COMMAND_TIMEOUT + 0.010) * 1000, frozen
    assert closed, "the breaker did not close after SIGCONT"
    assert closed[0] - resumed_at <= RESET_TIMEOUT + REPLAY_ALLOWANCE, (
        f"breaker closed {closed[0] - resumed_at:.2f}s after SIGCONT "
        f"(reset timeout {RESET_TIMEOUT}s)"
    )
    assert not lost, f"{len(lost)} jobs not completed after the hang, e.g. {lost[:5]}"


def _async(predicate: Callable[[], bool]) -> Callable[[], Any]:
    async def check() -> bool:
        return predicate()

    return check
