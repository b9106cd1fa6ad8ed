"""Observability: the Prometheus metrics of a service and the scrape-time probes feeding them."""

from redkeep.monitoring.metrics import CONTENT_TYPE, Metrics

__all__ = ["CONTENT_TYPE", "Metrics"]
