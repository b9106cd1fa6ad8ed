"""A redis-py asyncio ``Connection`` whose sends skip ``asyncio.wait_for`` when they cannot block.

redis-py (5.x to 8.x) wraps every send in ``asyncio.wait_for(..., socket_timeout)``, which
creates a task per command and costs a large share of a loopback round trip. A write that the
kernel accepted at once (nothing left in the transport buffer) cannot block, so it needs no
timer; only a write that left data buffered awaits ``drain()`` under the timeout. Replies are
still read under ``socket_timeout`` by redis-py itself, so a frozen server still times out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["FastSendConnection"]


class FastSendConnection(Connection):
    """``Connection`` with a timer-free fast path for non-blocking sends."""

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        writer: Any = self._writer
        if (
            writer is None
            or not self.is_connected
            or not self.socket_timeout
            or (check_health and self.health_check_interval)
        ):
            await super().send_packed_command(command, check_health)
            return
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        try:
            writer.writelines(command)
            if writer.transport.get_write_buffer_size():
                await asyncio.wait_for(writer.drain(), self.socket_timeout)
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {exc}") from exc
        except BaseException:
            await self.disconnect(nowait=True)
            raise
