"""Prometheus series of the enqueue outbox (:mod:`redkeep.queue.outbox`), rendered from an
:class:`~redkeep.queue.outbox.OutboxStats` snapshot taken before each scrape."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from redkeep.queue.outbox import OutboxStats

__all__ = ["outbox_families"]


def outbox_families(st: OutboxStats) -> Iterable[Metric]:
    """Depth, oldest age, bytes, limits, relay lock and counters of the outbox."""

    def gauge(name: str, doc: str, value: float) -> Metric:
        family = GaugeMetricFamily(f"redkeep_outbox_{name}", doc)
        family.add_metric([], value)
        return family

    def per_queue(
        family: GaugeMetricFamily | CounterMetricFamily, values: Mapping[str, float]
    ) -> Metric:
        for queue, value in sorted(values.items()):
            family.add_metric([queue], float(value))
        return family

    yield per_queue(
        GaugeMetricFamily(
            "redkeep_outbox_jobs",
            "Jobs held in the enqueue outbox (every process sharing the file).",
            labels=["queue"],
        ),
        {q: d.jobs for q, d in st.queues.items()},
    )
    yield per_queue(
        GaugeMetricFamily(
            "redkeep_outbox_oldest_age_seconds",
            "Age of the oldest job held in the enqueue outbox.",
            labels=["queue"],
        ),
        {q: st.oldest_age(q) or 0.0 for q in st.queues},
    )
    yield gauge("bytes", "Bytes of jobs held in the enqueue outbox.", float(st.bytes))
    yield gauge("max_jobs", "Job limit of the enqueue outbox.", float(st.max_jobs))
    yield gauge("max_bytes", "Byte limit of the enqueue outbox.", float(st.max_bytes))
    for name, doc, values in (
        ("held", "Enqueues this process held in the outbox (Redis unreachable).", st.held),
        ("relayed", "Held jobs this process relayed to Redis.", st.relayed),
        ("rejected", "Enqueues refused because the outbox was full.", st.rejected),
    ):
        family = CounterMetricFamily(f"redkeep_outbox_{name}", doc, labels=["queue"])
        yield per_queue(family, values)
    errors = CounterMetricFamily(
        "redkeep_outbox_relay_errors", "Relay rounds that failed (retried)."
    )
    errors.add_metric([], float(st.relay_errors))
    yield errors
