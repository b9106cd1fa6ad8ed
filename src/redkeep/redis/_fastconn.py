"""The standalone hot path: a pooled-command executor and a timer-free ``Connection`` send.

``FastSendConnection``: redis-py (5.x to 8.x) wraps every send in ``asyncio.wait_for(...,
socket_timeout)``, which creates a task per command and costs a large share of a loopback round
trip. A write that the kernel accepted at once (nothing left in the transport buffer) cannot
block, so it needs no timer; only a write that left data buffered awaits ``drain()`` under the
timeout. Replies are still read under ``socket_timeout`` by redis-py itself, so a frozen server
still times out.

``PooledExecutor``: what ``RespClient`` runs standalone blocking and connection-state commands
through, and every command over TLS (the others share :mod:`redkeep.redis._mux`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from redis import exceptions as rx
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import AbstractBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["FastSendConnection", "PooledExecutor"]


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


async def _revive(conn: Any) -> None:
    """(Re)connect a pooled connection that is closed, half-closed or holds unread bytes."""
    if conn._reader is not None:
        await conn.disconnect()
    await conn.connect()


class PooledExecutor:
    """Runs one command on a redis-py ``ConnectionPool`` inside a slot of ``slots``.

    The same steps as redis-py's ``Redis.execute_command`` minus its per-call extras (retry
    lambdas, option dicts, response callbacks; 5.x's checkout poll that suspends under the pool
    lock, 8.x's locks and metrics hooks on checkout and release). Connections come from and go
    back to the pool's own lists, so pipelines, ``disconnect()`` and ``aclose()`` still see
    them; a redis-py without those lists gets the pool's public ``get_connection``/``release``.
    An idle connection with unread bytes or EOF (what redis-py 8's checkout checks, without
    5.x's poll) is reconnected first. A ``ConnectionError`` is retried like redis-py does it:
    disconnect, back off, resend (``retry_attempts`` more tries).
    """

    def __init__(
        self,
        pool: Any,
        slots: asyncio.Semaphore,
        acquire: Callable[[], Awaitable[object]],
        retry_attempts: int,
        backoff: AbstractBackoff,
    ) -> None:
        self._pool = pool
        self._slots = slots
        self._acquire = acquire  # the waiting path: BackendTimeout when no slot frees in time
        self._retry_attempts = retry_attempts
        self._backoff = backoff
        # the tries after the first failed one, which execute() makes inline
        self._retry_rest = Retry(
            backoff, max(retry_attempts - 1, 0), supported_errors=(rx.ConnectionError,)
        )
        if not self.lists:
            self.execute = self._execute_generic  # type: ignore[method-assign]

    @property
    def lists(self) -> bool:
        """True when connections come straight from the pool's lists (the fast path)."""
        return isinstance(getattr(self._pool, "_available_connections", None), list)

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its raw reply (``ResponseError`` is raised)."""
        return await self._on_connection(lambda conn: _send_read(conn, args))

    async def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """A non-transactional pipeline: errors come back in place as ``ResponseError``.

        Only with :attr:`lists`; resent as a whole after a ``ConnectionError``, like redis-py.
        """
        replies: list[Any] = await self._on_connection(lambda conn: _send_read_many(conn, commands))
        return replies

    async def _on_connection(self, attempt: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run ``attempt(conn)`` on a pooled connection inside a slot, retrying it like
        redis-py after a ``ConnectionError``."""
        await self._acquire()  # returns without suspending while a slot is free
        try:
            pool = self._pool
            free = pool._available_connections
            conn = free.pop() if free else pool.make_connection()
            pool._in_use_connections.add(conn)
            try:
                reader = conn._reader
                if reader is None or reader._buffer or reader.at_eof():
                    await _revive(conn)
                try:
                    return await attempt(conn)
                except rx.ConnectionError as exc:
                    return await self._retry(conn, lambda: attempt(conn), exc)
            finally:
                pool._in_use_connections.discard(conn)
                pool._available_connections.append(conn)
        finally:
            self._slots.release()

    async def _execute_generic(self, *args: Any) -> Any:
        await self._acquire()
        try:
            conn = await self._pool.get_connection()
            try:
                await conn.send_command(*args)
                return await conn.read_response()
            except rx.ConnectionError as exc:
                return await self._retry(conn, lambda: _send_read(conn, args), exc)
            finally:
                await self._pool.release(conn)
        finally:
            self._slots.release()

    async def _retry(self, conn: Any, attempt: Callable[[], Awaitable[Any]], exc: Exception) -> Any:
        await conn.disconnect()
        if self._retry_attempts <= 0:
            raise exc
        await asyncio.sleep(self._backoff.compute(1))

        async def fail(_: Exception) -> None:
            await conn.disconnect()

        return await self._retry_rest.call_with_retry(attempt, fail)


async def _send_read(conn: Any, args: tuple[Any, ...]) -> Any:
    await conn.send_command(*args)
    return await conn.read_response()


async def _send_read_many(conn: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
    await conn.send_packed_command(conn.pack_commands(commands), True)
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await conn.read_response())
        except rx.ResponseError as exc:
            replies.append(exc)
    return replies
