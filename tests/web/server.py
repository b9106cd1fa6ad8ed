"""Helpers for web tests: a real uvicorn server on a free loopback port, in a thread with its
own event loop, and Settings for a test service.

The app owns its Services (created in the app's lifespan from the test's Settings), so the
test thread can talk to it with any HTTP client, sync or async.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import uvicorn
from tests.support.redis_server import free_port

from redkeep.config import Settings
from redkeep.services import Services
from redkeep.web.app import create_app

TOKEN = "web-test-token-7f3a9c"


class ServerThread:
    """uvicorn serving ``create_app(settings=...)`` until :meth:`stop`."""

    def __init__(
        self, settings: Settings, handlers: Mapping[str, Callable[..., Any]] | None = None
    ) -> None:
        self.port = free_port()
        self.app = create_app(settings=settings, worker_handlers=handlers)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    def start(self, timeout: float = 20.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "uvicorn did not stop"


def redis_settings(redis_url: str, prefix: str, **overrides: Any) -> Settings:
    """Settings for a test service on ``redis_url`` under the test's key prefix."""
    values: dict[str, Any] = {
        "backend": "redis",
        "redis_url": redis_url,
        "key_prefix": prefix,
        "api_token": TOKEN,
        "connect_max_wait": 2.0,
        "health_check_interval": 0.5,
        "queue_backoff_base": 0.05,
        "queue_backoff_max": 0.1,
    }
    values.update(overrides)
    return Settings(**values)
