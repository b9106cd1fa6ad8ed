"""`redkeep worker` settings: a worker process does not busy-poll unless told to."""

from __future__ import annotations

import pytest

from redkeep.cli.worker import worker_settings
from redkeep.config import Settings


def test_worker_turns_busy_polling_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDKEEP_BUSY_POLL", raising=False)
    settings = Settings()
    assert settings.busy_poll > 0  # library and service default
    assert worker_settings(settings).busy_poll == 0.0


def test_worker_keeps_an_explicit_busy_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDKEEP_BUSY_POLL", "0.0001")
    assert worker_settings(Settings()).busy_poll == 0.0001
