"""uvicorn's server, announcing where it listens once the socket is bound."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

__all__ = ["AnnouncingServer"]

log = logging.getLogger("redkeep.cli")


class AnnouncingServer(uvicorn.Server):
    """Logs ``announcement`` (redkeep's logger, at INFO) once the socket is bound, not before.

    With ``handle_signals=False`` it leaves SIGTERM/SIGINT to the caller (a worker that owns
    the process) and stops when :attr:`should_exit` is set.
    """

    def __init__(
        self, config: uvicorn.Config, announcement: str, *, handle_signals: bool = True
    ) -> None:
        super().__init__(config)
        self.announcement = announcement
        self.handle_signals = handle_signals

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if self.handle_signals:
            with super().capture_signals():
                yield
        else:
            yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            log.info("%s", self.announcement)
