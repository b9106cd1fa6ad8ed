"""One multiplexed connection: the engine of :class:`~redkeep.redis.mux.MuxClient`.

Built on sockets, :mod:`ssl` and hiredis' public ``Reader``/``pack_command`` only; from
redis-py it takes nothing but its public exception classes and backoff.

Every command of a client shares one non-blocking socket watched by the event loop. A caller
writes its command and awaits a future; replies come back in order, so each reply goes to the
oldest waiter. Concurrent callers are thereby pipelined for free, and an awaited command costs
one ``send``, one ``recv`` and one future, about a third of redis-py's stream-based round trip
in CPU. TLS runs through an ``ssl.SSLObject`` over memory buffers on the same socket.

Spin-then-park: a caller whose command is the only one in flight first polls the socket for up
to ``spin`` seconds before parking on the event loop. On virtual machines, waking a vCPU that
halted in ``epoll_wait`` costs ~100 µs, several times the server's own time for a small command,
so a sequential caller gets its reply 2-3x sooner for at most ``spin`` of CPU per call. It first
yields to the loop once, so that every task already ready runs first; it never spins while
other commands are in flight, and it stops spinning while replies keep arriving later than
``spin`` (a remote or busy server).

Failures: a lost connection fails every pending command. The connection counts the bytes the
kernel accepted, so it knows which commands were written whole: those fail with
:class:`LostReply` (they may have run), the others with a plain ``ConnectionError`` (never
seen by the server). Only the latter, and commands :func:`~redkeep.redis.policy.may_resend`
allows, are sent again (``retry_attempts`` times, with backoff); the rest raise
:class:`~redkeep.errors.OutcomeUnknown`. A connection that delivers nothing for ``timeout``
seconds while commands wait is closed and those commands fail with ``TimeoutError`` (one timer
per connection). A cancelled caller's reply is read and dropped, so later replies stay matched.
With ``health_check_interval``, a connection idle that long answers a PING before it is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis import exceptions as rx
from redis.backoff import AbstractBackoff

from redkeep.errors import BackendUnavailable
from redkeep.redis._wire import Batch, Conn, LostReply, Tls, pack
from redkeep.redis.policy import may_resend, outcome_unknown
from redkeep.redis.urls import RedisTarget

__all__ = ["Multiplexer"]

_running_loop = asyncio.get_running_loop
_READ = 256 * 1024
_MAX_MISSES = 8  # consecutive missed spins after which spinning stops...
_PROBE_EVERY = 64  # ...except on every 64th sequential command, to notice a faster server


class Multiplexer:
    """Runs commands on one shared connection to ``target``, (re)connected on demand."""

    def __init__(
        self,
        target: RedisTarget,
        *,
        connect_timeout: float,
        timeout: float,
        retry_attempts: int,
        backoff: AbstractBackoff,
        spin: float = 0.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._target = target
        self._connect_timeout = connect_timeout
        self.timeout = timeout
        self.spin = spin
        self._retry_attempts = retry_attempts
        self._backoff = backoff
        self._tls = tls
        self._health = target.health_check_interval
        self.spin_conditions: list[Callable[[], bool]] = []  # spin only while all hold
        self._misses = 0  # consecutive spins that ended before the reply came
        self._probe = 0
        self._conn: Conn | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply; an error reply is raised."""
        conn = self._conn
        try:
            if (
                conn is None
                or conn.drained is not None
                or conn.loop is not _running_loop()
                or (self._health and conn.loop.time() - conn.progress > self._health)
            ):
                conn = await self._ready()
            fut = conn.loop.create_future()
            conn.send(pack(args), fut)
            if (
                self.spin
                and len(conn.waiters) == 1
                and all(ok() for ok in self.spin_conditions)
                and self._spin_pays()
            ):
                # Let every task that is ready run first (e.g. callers whose replies came in the
                # same read): spin only if this command is then still the only one in flight.
                try:
                    await asyncio.sleep(0)
                except asyncio.CancelledError:
                    fut.cancel()  # its reply is then read and dropped
                    raise
                if not fut.done() and len(conn.waiters) == 1:
                    conn.spin(fut, self.spin)
                    if fut.done():
                        self._misses = 0
                    else:
                        self._misses += 1
            return await fut
        except rx.ConnectionError as exc:
            return await self._retry(lambda c: self._one(c, args), exc, lambda: may_resend(args))

    def forgive_miss(self) -> None:
        """The last spin missed for a reason that says nothing about the server's speed (a
        blocking pop that timed out): do not count it."""
        if self._misses:
            self._misses -= 1

    def _spin_pays(self) -> bool:
        """Spin unless the last spins all missed (a slow or remote server); probe now and then."""
        if self._misses < _MAX_MISSES:
            return True
        self._probe += 1
        return self._probe % _PROBE_EVERY == 0

    async def execute_many(
        self, commands: Sequence[Sequence[Any]], *, resend: bool | None = None
    ) -> list[Any]:
        """A pipeline: error replies come back in place. After a lost reply it is sent again
        only when ``resend`` (default: every command may be re-sent, see the module notes)."""
        data = b"".join(pack(c) for c in commands)
        n = len(commands)

        def may() -> bool:
            return all(may_resend(c) for c in commands) if resend is None else resend

        try:
            return await self._many(await self._ready(), data, n)
        except rx.ConnectionError as exc:
            replies: list[Any] = await self._retry(lambda c: self._many(c, data, n), exc, may)
            return replies

    @staticmethod
    async def _one(conn: Conn, args: Sequence[Any]) -> Any:
        fut = conn.loop.create_future()
        conn.send(pack(args), fut)
        return await fut

    @staticmethod
    async def _many(conn: Conn, data: bytes, n: int) -> list[Any]:
        batch = Batch(conn.loop.create_future(), n)
        conn.send(data, batch, n)
        return await batch.future

    async def _ready(self) -> Conn:
        conn = self._conn
        if conn is not None and conn.loop is not _running_loop():
            # used from another event loop (e.g. a second asyncio.run()): start afresh
            conn.abort(rx.ConnectionError("event loop changed"))
            self._lock = asyncio.Lock()
        conn = self._conn or await self._connect()
        if self._health and not conn.waiters and conn.loop.time() - conn.progress > self._health:
            conn = await self._health_check(conn)
        if conn.drained is not None:
            await conn.drained
            if conn.closed:
                raise rx.ConnectionError("Connection closed")
        return conn

    async def _health_check(self, conn: Conn) -> Conn:
        """PING an idle connection before use; a dead one is replaced (nothing was sent)."""
        async with self._lock:
            if conn.closed or conn.loop.time() - conn.progress <= self._health:
                return self._conn or await self._connect(locked=True)
            try:
                fut = conn.loop.create_future()
                conn.send(pack(("PING",)), fut)
                await fut
                return conn
            except (rx.ConnectionError, rx.TimeoutError):
                conn.abort(rx.ConnectionError("health check failed"))
                return await self._connect(locked=True)

    async def _retry(
        self,
        attempt: Callable[[Conn], Awaitable[Any]],
        exc: Exception,
        resendable: Callable[[], bool],
    ) -> Any:
        for n in range(1, self._retry_attempts + 1):
            if isinstance(exc, LostReply) and not resendable():
                break
            if self._closed:
                raise BackendUnavailable("redis client is closed") from None
            await asyncio.sleep(self._backoff.compute(n))
            try:
                return await attempt(await self._ready())
            except rx.ConnectionError as again:
                exc = again
        if isinstance(exc, LostReply) and not resendable():
            raise outcome_unknown(exc) from None
        raise exc

    async def _connect(self, *, locked: bool = False) -> Conn:
        if self._closed:
            raise BackendUnavailable("redis client is closed")
        async with contextlib.nullcontext() if locked else self._lock:
            if self._conn is not None and not self._conn.closed:
                return self._conn
            conn: Conn | None = None
            try:
                async with asyncio.timeout(self._connect_timeout):
                    sock, tls = await self._open_socket()
                    conn = Conn(sock, self.timeout, tls)
                    await self._handshake(conn)
            except TimeoutError:
                if conn is not None:
                    conn.abort(rx.TimeoutError("Timeout connecting to server"))
                raise rx.TimeoutError("Timeout connecting to server") from None
            except BaseException as exc:
                if conn is not None:
                    conn.abort(rx.ConnectionError("Connection handshake failed"))
                if isinstance(exc, LostReply):  # nothing but the handshake was sent
                    raise rx.ConnectionError(str(exc)) from None
                raise
            if self._closed:
                conn.abort(BackendUnavailable("redis client is closed"))
                raise BackendUnavailable("redis client is closed")
            conn.on_close = self._forget
            self._conn = conn
            return conn

    async def _open_socket(self) -> tuple[socket.socket, Tls | None]:
        loop = asyncio.get_running_loop()
        t = self._target
        if t.path is not None:
            targets: list[tuple[Any, ...]] = [(socket.AF_UNIX, t.path)]
        else:
            try:
                infos = await loop.getaddrinfo(t.host, t.port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise rx.ConnectionError(f"Error resolving {t.host}: {exc.strerror}") from None
            targets = [(family, addr) for family, _, _, _, addr in infos]
        error = "no address"
        for family, addr in targets:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, addr)
                if family != socket.AF_UNIX:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if t.socket_keepalive:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                tls = await self._tls_handshake(sock) if self._tls is not None else None
            except OSError as exc:
                sock.close()
                error = exc.strerror or str(exc)
                if isinstance(exc, ssl.SSLError):  # the server answered: no other address
                    raise rx.ConnectionError(f"TLS handshake failed: {exc}") from None
                continue
            except BaseException:
                sock.close()
                raise
            return sock, tls
        raise rx.ConnectionError(f"Error connecting to Redis: {error}")

    async def _tls_handshake(self, sock: socket.socket) -> Tls:
        assert self._tls is not None
        loop = asyncio.get_running_loop()
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        host = None if self._target.path is not None else self._target.host
        tls = self._tls.wrap_bio(incoming, outgoing, server_hostname=host)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    await loop.sock_sendall(sock, outgoing.read())
                data = await loop.sock_recv(sock, _READ)
                if not data:
                    raise ConnectionResetError("closed during the TLS handshake") from None
                incoming.write(data)
        if outgoing.pending:
            await loop.sock_sendall(sock, outgoing.read())
        return tls, incoming, outgoing

    async def _handshake(self, conn: Conn) -> None:
        t = self._target
        commands: list[tuple[Any, ...]] = []
        if t.protocol == 3:
            hello: list[Any] = ["HELLO", 3]
            if t.password is not None:
                hello += ["AUTH", t.username or "default", t.password]
            if t.client_name:
                hello += ["SETNAME", t.client_name]
            commands.append(tuple(hello))
        else:
            if t.password is not None:
                commands.append(
                    ("AUTH", t.username, t.password) if t.username else ("AUTH", t.password)
                )
            if t.client_name:
                commands.append(("CLIENT", "SETNAME", t.client_name))
        if t.db:
            commands.append(("SELECT", t.db))
        if commands:
            for reply in await self._many(conn, b"".join(map(pack, commands)), len(commands)):
                if isinstance(reply, Exception):
                    raise reply

    def _forget(self, conn: Conn) -> None:
        if self._conn is conn:
            self._conn = None

    def close(self) -> None:
        """Close the connection; pending and later commands fail with BackendUnavailable."""
        self._closed = True
        if self._conn is not None:
            self._conn.abort(BackendUnavailable("redis client is closed"))
