"""Metrics: the exposition parses and carries each named series with the right values.

These tests feed the hooks directly (the same calls the Redis clients, the worker and the
middleware make); the end-to-end path through a running service is in tests/web/.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from redkeep.cache.base import CacheStats
from redkeep.monitoring.metrics import Metrics
from redkeep.resilience import CircuitBreaker


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.render().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def test_registries_are_per_instance() -> None:
    a, b = Metrics(), Metrics()
    a.on_command("resp", "get", 0.001, None)
    assert (
        value(a, "redkeep_redis_command_duration_seconds_count", transport="resp", command="GET")
        == 1
    )
    assert (
        value(b, "redkeep_redis_command_duration_seconds_count", transport="resp", command="GET")
        is None
    )


def test_command_latency_and_errors_by_category() -> None:
    m = Metrics()
    m.on_command("resp", "GET", 0.002, None)
    m.on_command("resp", "GET", 0.004, "BackendTimeout")
    m.on_command("upstash", "SET", 0.010, None)
    assert (
        value(m, "redkeep_redis_command_duration_seconds_count", transport="resp", command="GET")
        == 2
    )
    total = value(m, "redkeep_redis_command_duration_seconds_sum", transport="resp", command="GET")
    assert total is not None and abs(total - 0.006) < 1e-9
    assert value(m, "redkeep_redis_errors_total", transport="resp", category="BackendTimeout") == 1
    assert (
        value(m, "redkeep_redis_command_duration_seconds_count", transport="upstash", command="SET")
        == 1
    )
    # le bucket: the 2 ms GET is under the 2.5 ms bucket, the 4 ms one is not.
    assert (
        value(
            m,
            "redkeep_redis_command_duration_seconds_bucket",
            transport="resp",
            command="GET",
            le="0.0025",
        )
        == 1
    )


def test_worker_hooks() -> None:
    m = Metrics()
    m.on_job_finished("emails", "send", "completed", 0.2)
    m.on_job_finished("emails", "send", "completed", 0.3)
    m.on_job_finished("emails", "send", "failed", 1.0)
    m.on_retry("emails", "send")
    m.on_recovered("emails", 3)
    m.on_recovered("emails", 0)
    assert (
        value(
            m,
            "redkeep_job_duration_seconds_count",
            queue="emails",
            handler="send",
            status="completed",
        )
        == 2
    )
    assert (
        value(
            m, "redkeep_job_duration_seconds_count", queue="emails", handler="send", status="failed"
        )
        == 1
    )
    assert value(m, "redkeep_job_retries_total", queue="emails", handler="send") == 1
    assert value(m, "redkeep_jobs_recovered_total", queue="emails") == 3


def test_http_requests_by_route_template() -> None:
    m = Metrics()
    m.observe_http("GET", "/v1/caches/{name}/stats", 200, 0.001)
    m.observe_http("GET", "/v1/caches/{name}/stats", 200, 0.001)
    m.observe_http("GET", "/v1/caches/{name}/stats", 400, 0.001)
    assert (
        value(
            m,
            "redkeep_http_requests_total",
            method="GET",
            route="/v1/caches/{name}/stats",
            status="200",
        )
        == 2
    )
    assert (
        value(
            m,
            "redkeep_http_requests_total",
            method="GET",
            route="/v1/caches/{name}/stats",
            status="400",
        )
        == 1
    )
    assert (
        value(
            m,
            "redkeep_http_request_duration_seconds_count",
            method="GET",
            route="/v1/caches/{name}/stats",
        )
        == 3
    )


def test_scrape_time_snapshots() -> None:
    m = Metrics()
    stats = CacheStats(hits=5, misses=2, sets=3, fallback_reads=1, fallback_writes=4)
    m.set_cache("sessions", stats, on_fallback=True)
    m.set_queue("default", {"waiting": 7, "active": 1, "failed": 0}, 12.5)
    m.set_connection("redis", "resp", "ready", pool_in_use=2, latency=0.0004)
    assert value(m, "redkeep_cache_hits_total", cache="sessions") == 5
    assert value(m, "redkeep_cache_misses_total", cache="sessions") == 2
    assert value(m, "redkeep_cache_fallback_reads_total", cache="sessions") == 1
    assert value(m, "redkeep_cache_fallback_writes_total", cache="sessions") == 4
    assert value(m, "redkeep_cache_on_fallback", cache="sessions") == 1
    assert value(m, "redkeep_queue_jobs", queue="default", status="waiting") == 7
    assert value(m, "redkeep_queue_oldest_waiting_age_seconds", queue="default") == 12.5
    assert value(m, "redkeep_queue_paused", queue="default") is None  # not known: not shown
    m.set_queue("mail", {"waiting": 1}, None, paused=True)
    assert value(m, "redkeep_queue_paused", queue="mail") == 1
    assert (
        value(m, "redkeep_connection_state", connection="redis", transport="resp", state="ready")
        == 1
    )
    assert (
        value(m, "redkeep_connection_state", connection="redis", transport="resp", state="degraded")
        == 0
    )
    assert value(m, "redkeep_connection_pool_in_use", connection="redis", transport="resp") == 2
    # A later snapshot replaces the earlier one.
    m.set_queue("default", {"waiting": 0}, None)
    assert value(m, "redkeep_queue_jobs", queue="default", status="waiting") == 0
    assert value(m, "redkeep_queue_jobs", queue="default", status="active") is None
    assert value(m, "redkeep_queue_oldest_waiting_age_seconds", queue="default") == 0


def test_breaker_state_and_transitions_from_listener() -> None:
    m = Metrics()
    clock = [0.0]
    breaker = CircuitBreaker(
        "redis", failure_threshold=1, window=10, reset_timeout=1, clock=lambda: clock[0]
    )
    m.set_breaker_state(breaker.name, breaker.state)
    breaker.add_listener(m.breaker_changed)
    assert value(m, "redkeep_breaker_state", breaker="redis", state="closed") == 1
    breaker.trip()
    assert value(m, "redkeep_breaker_state", breaker="redis", state="open") == 1
    assert value(m, "redkeep_breaker_state", breaker="redis", state="closed") == 0
    clock[0] = 2.0
    assert breaker.allow()
    breaker.record_success()
    assert (
        value(
            m,
            "redkeep_breaker_transitions_total",
            breaker="redis",
            from_state="closed",
            to_state="open",
        )
        == 1
    )
    assert (
        value(
            m,
            "redkeep_breaker_transitions_total",
            breaker="redis",
            from_state="open",
            to_state="half_open",
        )
        == 1
    )
    assert (
        value(
            m,
            "redkeep_breaker_transitions_total",
            breaker="redis",
            from_state="half_open",
            to_state="closed",
        )
        == 1
    )
    assert value(m, "redkeep_breaker_state", breaker="redis", state="closed") == 1


async def test_fallback_cache_and_breaker_series_from_a_degraded_service() -> None:
    # Redis absent: the service starts degraded, caches serve from their memory fallback.
    from redkeep.config import Settings
    from redkeep.services import create_services
    from tests.support.redis_server import free_port

    settings = Settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        connect_timeout=0.5,
        command_timeout=0.5,
        connect_max_wait=0.5,
        retry_attempts=0,
    )
    async with create_services(settings) as services:
        cache = services.cache("sessions")
        await cache.set("a", 1)
        await cache.set("b", 2)
        assert await cache.get("a") == 1
        assert await cache.get("zzz") is None
        await services.refresh_metrics()
        m = services.metrics
        assert value(m, "redkeep_cache_fallback_writes_total", cache="sessions") == 2
        assert value(m, "redkeep_cache_fallback_reads_total", cache="sessions") == 2
        assert value(m, "redkeep_cache_on_fallback", cache="sessions") == 1
        assert value(m, "redkeep_breaker_state", breaker="cache", state="open") == 1
        assert (
            value(
                m,
                "redkeep_breaker_transitions_total",
                breaker="cache",
                from_state="closed",
                to_state="open",
            )
            == 1
        )
        assert (
            value(m, "redkeep_connection_state", connection="redis", transport="mux", state="ready")
            == 0
        )
        errors = value(
            m, "redkeep_redis_errors_total", transport="mux", category="BackendUnavailable"
        )
        assert errors is not None and errors >= 1


async def test_queue_depth_matches_counts_in_one_script_call(resp_client: Any, prefix: str) -> None:
    import asyncio

    from redkeep.monitoring.probes import queue_depth
    from redkeep.queue.memory import MemoryJobQueue
    from redkeep.queue.redis import RedisJobQueue

    for queue in (RedisJobQueue(resp_client, "depth", key_prefix=prefix), MemoryJobQueue("depth")):
        counts, age = await queue_depth(queue)
        assert age is None
        assert sum(counts.values()) == 0
        await queue.enqueue("a", 1)
        await asyncio.sleep(0.5)
        await queue.enqueue("b", 2, priority=5)
        await queue.enqueue("c", 3, delay=60)
        counts, age = await queue_depth(queue)
        assert counts == await queue.counts()
        assert counts["waiting"] == 2
        assert counts["delayed"] == 1
        # The head of the waiting queue is the priority-5 job, enqueued last: a young age.
        assert age is not None and 0 <= age < 0.5
