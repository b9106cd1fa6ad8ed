"""One multiplexed connection: the standalone hot path of :class:`~redkeep.redis.resp.RespClient`.

Every non-blocking command of a client shares one non-blocking socket watched by the event loop.
A caller writes its command and awaits a future; replies come back in order, so each reply goes
to the oldest waiter. Concurrent callers are thereby pipelined for free, and an awaited command
costs one ``send``, one ``recv`` and one future, about a third of redis-py's stream-based round
trip in CPU. Commands that block a connection or change its state (:data:`POOLED`) keep using
redis-py's pool, and so does TLS.

Spin-then-park: a caller whose command is the only one in flight first polls the socket for up
to ``spin`` seconds before parking on the event loop. On virtual machines, waking a vCPU that
halted in ``epoll_wait`` costs ~100 µs, several times the server's own time for a small command,
so a sequential caller gets its reply 2-3x sooner for at most ``spin`` of CPU per call. It first
yields to the loop once, so that every task already ready runs before it; it never spins while
other commands are in flight, and it stops spinning while replies keep arriving later than
``spin`` (a remote or busy server).

Failures mirror redis-py's: a lost connection fails every pending command with
``ConnectionError``, which is retried (reconnect, back off, resend) up to ``retry_attempts``
times; a connection that delivers nothing for ``timeout`` seconds while commands wait is closed
and those commands fail with ``TimeoutError`` (one timer per connection, not one per command).
A cancelled caller's reply is read and dropped, so later replies stay matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import hiredis
from redis import exceptions as rx
from redis.backoff import AbstractBackoff

from redkeep.errors import BackendUnavailable
from redkeep.redis.errors import response_error

__all__ = ["POOLED", "Multiplexer", "pooled"]

POOLED = frozenset({
    "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
    "XREAD", "XREADGROUP", "WAIT", "WAITAOF", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR",
    "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SELECT", "AUTH", "HELLO", "RESET", "QUIT",
    "CLIENT", "READONLY", "READWRITE", "SHUTDOWN",
})  # fmt: skip
"""Commands that block a connection or change its state: these never share the connection."""

_PENDING = object()  # hiredis' "not enough data" marker
_running_loop = asyncio.get_running_loop
_READ = 256 * 1024
_HIGH_WATER = 4 * 1024 * 1024  # unsent bytes above which new commands wait for the socket
_MAX_MISSES = 8  # consecutive missed spins after which spinning stops...
_PROBE_EVERY = 64  # ...except on every 64th sequential command, to notice a faster server


def pooled(name: Any) -> bool:
    """True when the command ``name`` must not share the multiplexed connection."""
    return isinstance(name, str) and name.split(" ", 1)[0].upper() in POOLED


def _pack(args: Sequence[Any]) -> bytes:
    name = args[0]
    if isinstance(name, str) and " " in name:  # "SCRIPT LOAD": redis-py splits it too
        args = (*name.split(), *args[1:])
    try:
        packed: bytes = hiredis.pack_command(tuple(args))
        return packed
    except TypeError as exc:
        raise rx.DataError(f"invalid command argument: {exc}") from None


class _Batch:
    """Collects the replies of one pipeline; error replies stay in place."""

    __slots__ = ("future", "left", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], n: int) -> None:
        self.future = future
        self.left = n
        self.replies: list[Any] = []

    def add(self, reply: Any) -> None:
        self.replies.append(reply)
        self.left -= 1
        if not self.left and not self.future.done():
            self.future.set_result(self.replies)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class _Conn:
    """One connected socket, its reply parser and the queue of waiting callers."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.sock = sock
        self.fd = sock.fileno()
        self.timeout = timeout
        self.reader = hiredis.Reader(
            protocolError=rx.InvalidResponse,
            replyError=response_error,
            encoding="utf-8",
            errors="replace",
            notEnoughData=_PENDING,
        )
        self.waiters: deque[Any] = deque()
        self.unsent = bytearray()
        self.drained: asyncio.Future[None] | None = None
        self.progress = 0.0  # loop time of the last reply, or of the send that started a wait
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.on_close: Callable[[_Conn], None] = lambda conn: None
        self.loop.add_reader(self.fd, self.readable)

    # -- writing ---------------------------------------------------------------------------
    def send(self, data: bytes, waiter: Any, count: int = 1) -> None:
        if self.closed:
            raise rx.ConnectionError("Connection closed")
        waiters = self.waiters
        if not waiters:
            self.progress = self.loop.time()
            if self.timer is None:
                self.timer = self.loop.call_at(self.progress + self.timeout, self.check)
        if self.unsent:
            self.unsent += data
        else:
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self.abort(rx.ConnectionError(f"Error writing to socket: {exc.strerror}"))
                raise rx.ConnectionError(f"Error writing to socket: {exc.strerror}") from None
            if sent < len(data):
                self.unsent += data[sent:]
                self.loop.add_writer(self.fd, self.writable)
        if count == 1:
            waiters.append(waiter)
        else:
            waiters.extend(itertools.repeat(waiter, count))
        if len(self.unsent) > _HIGH_WATER and self.drained is None:
            self.drained = self.loop.create_future()

    def writable(self) -> None:
        try:
            sent = self.sock.send(self.unsent)
        except BlockingIOError:
            return
        except OSError as exc:
            self.abort(rx.ConnectionError(f"Error writing to socket: {exc.strerror}"))
            return
        del self.unsent[:sent]
        if not self.unsent:
            self.loop.remove_writer(self.fd)
            self.release_writers()

    def release_writers(self) -> None:
        if self.drained is not None:
            if not self.drained.done():
                self.drained.set_result(None)  # a writer then finds the connection closed
            self.drained = None

    # -- reading ---------------------------------------------------------------------------
    def readable(self) -> bool:
        """Read what the socket holds and hand out complete replies; False when it held none."""
        try:
            data = self.sock.recv(_READ)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self.abort(rx.ConnectionError(f"Error reading from socket: {exc.strerror}"))
            return True
        if not data:
            self.abort(rx.ConnectionError("Connection closed by server."))
            return True
        reader = self.reader
        waiters = self.waiters
        reader.feed(data)
        try:
            while waiters:
                reply = reader.gets()
                if reply is _PENDING:
                    break
                w = waiters.popleft()
                if w.__class__ is _Batch:
                    w.add(reply)
                elif w.done():
                    continue  # its caller was cancelled
                elif isinstance(reply, Exception):
                    w.set_exception(reply)
                else:
                    w.set_result(reply)
        except rx.InvalidResponse as exc:
            self.abort(rx.ConnectionError(f"Protocol error: {exc}"))
        self.progress = self.loop.time()
        return True

    def spin(self, fut: asyncio.Future[Any], seconds: float) -> None:
        """Poll the socket until ``fut`` is done or ``seconds`` pass (see the module notes)."""
        deadline = time.perf_counter() + seconds
        while not fut.done() and not self.closed and time.perf_counter() < deadline:
            self.readable()

    # -- failure ---------------------------------------------------------------------------
    def check(self) -> None:
        """The read timeout: no reply for ``timeout`` seconds while commands wait."""
        self.timer = None
        if not self.waiters or self.closed:
            return
        due = self.progress + self.timeout
        if self.loop.time() >= due:
            self.abort(rx.TimeoutError("Timeout reading from socket"))
        else:
            self.timer = self.loop.call_at(due, self.check)

    def abort(self, exc: BaseException) -> None:
        """Close the socket and fail every pending command with ``exc``."""
        if not self.closed:
            self.closed = True
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                if self.timer is not None:
                    self.timer.cancel()
                self.loop.remove_reader(self.fd)
                if self.unsent:
                    self.loop.remove_writer(self.fd)
            self.sock.close()
            self.on_close(self)
        waiters, self.waiters = self.waiters, deque()
        for w in waiters:
            if w.__class__ is _Batch:
                w.fail(exc)
            elif not w.done():
                w.set_exception(exc)
        self.release_writers()


class Multiplexer:
    """Runs commands on one shared connection, (re)connected on demand.

    ``params`` are redis-py's parsed connection keywords (``ConnectionPool.connection_kwargs``):
    host and port or path, db, username, password, client_name.
    """

    def __init__(
        self,
        params: dict[str, Any],
        *,
        connect_timeout: float,
        timeout: float,
        retry_attempts: int,
        backoff: AbstractBackoff,
        spin: float = 0.0,
    ) -> None:
        self._params = params
        self._connect_timeout = connect_timeout
        self.timeout = timeout
        self.spin = spin
        self._retry_attempts = retry_attempts
        self._backoff = backoff
        self.spin_conditions: list[Callable[[], bool]] = []  # spin only while all hold
        self._misses = 0  # consecutive spins that ended before the reply came
        self._probe = 0
        self._conn: _Conn | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply; an error reply is raised."""
        conn = self._conn
        try:
            if conn is None or conn.drained is not None or conn.loop is not _running_loop():
                conn = await self._ready()
            fut = conn.loop.create_future()
            conn.send(_pack(args), fut)
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
            return await self._retry(lambda c: self._one(c, args), exc)

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

    async def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """A non-transactional pipeline: error replies come back in place."""
        data = b"".join(_pack(c) for c in commands)
        n = len(commands)
        try:
            return await self._many(await self._ready(), data, n)
        except rx.ConnectionError as exc:
            replies: list[Any] = await self._retry(lambda c: self._many(c, data, n), exc)
            return replies

    @staticmethod
    async def _one(conn: _Conn, args: Sequence[Any]) -> Any:
        fut = conn.loop.create_future()
        conn.send(_pack(args), fut)
        return await fut

    @staticmethod
    async def _many(conn: _Conn, data: bytes, n: int) -> list[Any]:
        batch = _Batch(conn.loop.create_future(), n)
        conn.send(data, batch, n)
        return await batch.future

    async def _ready(self) -> _Conn:
        conn = self._conn
        if conn is not None and conn.loop is not _running_loop():
            # used from another event loop (e.g. a second asyncio.run()): start afresh
            conn.abort(rx.ConnectionError("event loop changed"))
            self._lock = asyncio.Lock()
        conn = self._conn or await self._connect()
        if conn.drained is not None:
            await conn.drained
            if conn.closed:
                raise rx.ConnectionError("Connection closed")
        return conn

    async def _retry(self, attempt: Callable[[_Conn], Awaitable[Any]], exc: Exception) -> Any:
        for n in range(1, self._retry_attempts + 1):
            if self._closed:
                break
            await asyncio.sleep(self._backoff.compute(n))
            try:
                return await attempt(await self._ready())
            except rx.ConnectionError as again:
                exc = again
        raise exc

    async def _connect(self) -> _Conn:
        if self._closed:
            raise BackendUnavailable("redis client is closed")
        async with self._lock:
            if self._conn is not None:
                return self._conn
            conn: _Conn | None = None
            try:
                async with asyncio.timeout(self._connect_timeout):
                    conn = _Conn(await self._open_socket(), self.timeout)
                    await self._handshake(conn)
            except TimeoutError:
                if conn is not None:
                    conn.abort(rx.TimeoutError("Timeout connecting to server"))
                raise rx.TimeoutError("Timeout connecting to server") from None
            except BaseException:
                if conn is not None:
                    conn.abort(rx.ConnectionError("Connection handshake failed"))
                raise
            if self._closed:
                conn.abort(BackendUnavailable("redis client is closed"))
                raise BackendUnavailable("redis client is closed")
            conn.on_close = self._forget
            self._conn = conn
            return conn

    async def _open_socket(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        p = self._params
        if p.get("path"):
            targets: list[tuple[Any, ...]] = [(socket.AF_UNIX, p["path"])]
        else:
            host, port = p.get("host", "localhost"), p.get("port", 6379)
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise rx.ConnectionError(f"Error resolving {host}: {exc.strerror}") from None
            targets = [(family, addr) for family, _, _, _, addr in infos]
        error = "no address"
        for family, addr in targets:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, addr)
            except OSError as exc:
                sock.close()
                error = exc.strerror or str(exc)
                continue
            except BaseException:
                sock.close()
                raise
            if family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise rx.ConnectionError(f"Error connecting to Redis: {error}")

    async def _handshake(self, conn: _Conn) -> None:
        p = self._params
        commands: list[tuple[Any, ...]] = []
        if p.get("password") is not None:
            user = p.get("username")
            commands.append(("AUTH", user, p["password"]) if user else ("AUTH", p["password"]))
        if p.get("db"):
            commands.append(("SELECT", p["db"]))
        if p.get("client_name"):
            commands.append(("CLIENT", "SETNAME", p["client_name"]))
        if commands:
            for reply in await self._many(conn, b"".join(map(_pack, commands)), len(commands)):
                if isinstance(reply, Exception):
                    raise reply

    def _forget(self, conn: _Conn) -> None:
        if self._conn is conn:
            self._conn = None

    def close(self) -> None:
        """Close the connection; pending and later commands fail with BackendUnavailable."""
        self._closed = True
        if self._conn is not None:
            self._conn.abort(BackendUnavailable("redis client is closed"))
