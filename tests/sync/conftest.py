"""Fixtures of the sync API tests: ``sync_settings`` and ``services`` (started, closed after)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from redkeep.config import Settings
from redkeep.sync import SyncServices, create_sync_services


def make_settings(**values: Any) -> Settings:
    """Settings with short timeouts, so that outage tests finish quickly."""
    base: dict[str, Any] = {
        "connect_timeout": 0.5,
        "command_timeout": 0.5,
        "connect_max_wait": 0.5,
        "retry_attempts": 0,
        "health_check_interval": 0.2,
        "breaker_reset_timeout": 0.2,
    }
    base.update(values)
    return Settings(**base)


@pytest.fixture
def sync_settings(redis_url: str, prefix: str) -> Settings:
    """Settings on the shared Redis under the test's unique prefix."""
    return make_settings(redis_url=redis_url, key_prefix=prefix, command_timeout=2.0)


@pytest.fixture
def services(sync_settings: Settings) -> Iterator[SyncServices]:
    """Started sync services on the shared Redis, closed after the test."""
    with create_sync_services(sync_settings) as services:
        yield services
