"""Fixtures of the web tests (helpers in tests/web/server.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from tests.web.server import ServerThread

from redkeep.config import Settings


@pytest.fixture
def serve() -> Iterator[Callable[..., ServerThread]]:
    """``serve(settings, handlers=None) -> ServerThread``, stopped at teardown."""
    started: list[ServerThread] = []

    def start(
        settings: Settings, handlers: Mapping[str, Callable[..., Any]] | None = None
    ) -> ServerThread:
        server = ServerThread(settings, handlers)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
