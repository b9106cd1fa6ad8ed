"""uvicorn's server, announcing where it listens once the socket is bound."""

from __future__ import annotations

import logging
import socket

import uvicorn

__all__ = ["AnnouncingServer"]

log = logging.getLogger("redkeep.cli")


class AnnouncingServer(uvicorn.Server):
    """Logs ``announcement`` (redkeep's logger, at INFO) once the socket is bound, not before."""

    def __init__(self, config: uvicorn.Config, announcement: str) -> None:
        super().__init__(config)
        self.announcement = announcement

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            log.info("%s", self.announcement)
