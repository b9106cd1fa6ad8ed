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
import itertools
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import hiredis
from redis import exceptions as rx
from redis.backoff import AbstractBackoff

from redkeep.errors import BackendUnavailable
from redkeep.redis.errors import response_error
from redkeep.redis.policy import may_resend, outcome_unknown
from redkeep.redis.urls import RedisTarget

__all__ = ["LostReply", "Multiplexer", "ssl_context"]

_PENDING = object()  # hiredis' "not enough data" marker
_running_loop = asyncio.get_running_loop
_READ = 256 * 1024
_HIGH_WATER = 4 * 1024 * 1024  # unsent bytes above which new commands wait for the socket
_MAX_MISSES = 8  # consecutive missed spins after which spinning stops...
_PROBE_EVERY = 64  # ...except on every 64th sequential command, to notice a faster server


class LostReply(rx.ConnectionError):
    """The connection was lost after the command was written whole: it may have run."""


def _pack(args: Sequence[Any]) -> bytes:
    name = args[0]
    if isinstance(name, str) and " " in name:  # "SCRIPT LOAD": redis-py splits it too
        args = (*name.split(), *args[1:])
    try:
        packed: bytes = hiredis.pack_command(tuple(args))
        return packed
    except TypeError as exc:
        raise rx.DataError(f"invalid command argument: {exc}") from None


def ssl_context(options: dict[str, Any]) -> ssl.SSLContext:
    """The client TLS context for a ``rediss://`` URL's ``ssl_*`` options."""
    ctx = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    ctx.check_hostname = bool(options.get("ssl_check_hostname", True))
    ctx.verify_mode = {
        "none": ssl.CERT_NONE,
        "optional": ssl.CERT_OPTIONAL,
        "required": ssl.CERT_REQUIRED,
    }[options.get("ssl_cert_reqs", "required")]
    if options.get("ssl_certfile"):
        ctx.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    return ctx


_Tls = tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]
"""A TLS session over memory buffers: the object, its incoming and its outgoing buffer."""


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
    """One connected socket, its reply parser and the queue of waiting callers.

    ``queued`` counts the bytes handed to :meth:`send` (ciphertext with TLS), ``sent`` those
    the kernel accepted; ``ends[i]`` is where the command of ``waiters[i]`` ends in that
    stream, so a command is written whole once ``sent >= ends[i]``.
    """

    def __init__(self, sock: socket.socket, timeout: float, tls: _Tls | None) -> None:
        self.loop = asyncio.get_running_loop()
        self.sock = sock
        self.fd = sock.fileno()
        self.timeout = timeout
        self.tls: ssl.SSLObject | None = None
        if tls is not None:
            self.tls, self.incoming, self.outgoing = tls
        self.reader = hiredis.Reader(
            protocolError=rx.InvalidResponse,
            replyError=response_error,
            encoding="utf-8",
            errors="replace",
            notEnoughData=_PENDING,
        )
        self.waiters: deque[Any] = deque()
        self.ends: deque[int] = deque()
        self.queued = 0
        self.sent = 0
        self.unsent = bytearray()
        self.drained: asyncio.Future[None] | None = None
        self.progress = (
            self.loop.time()
        )  # time of the last reply, or of the send that started a wait
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.on_close: Callable[[_Conn], None] = lambda conn: None
        self.loop.add_reader(self.fd, self.readable)

    # -- writing ---------------------------------------------------------------------------
    def send(self, data: bytes, waiter: Any, count: int = 1) -> None:
        if self.closed:
            raise rx.ConnectionError("Connection closed")
        if self.tls is not None:
            data = self._encrypt(data)
        waiters = self.waiters
        if not waiters:
            self.progress = self.loop.time()
            if self.timer is None:
                self.timer = self.loop.call_at(self.progress + self.timeout, self.check)
        self.queued += len(data)
        if count == 1:
            waiters.append(waiter)
            self.ends.append(self.queued)
        else:
            waiters.extend(itertools.repeat(waiter, count))
            self.ends.extend(itertools.repeat(self.queued, count))
        self._write(data)
        if len(self.unsent) > _HIGH_WATER and self.drained is None:
            self.drained = self.loop.create_future()

    def _encrypt(self, data: bytes) -> bytes:
        assert self.tls is not None
        view = memoryview(data)
        while view:
            view = view[self.tls.write(view) :]
        return self.outgoing.read()

    def _write(self, data: bytes) -> None:
        if self.unsent:
            self.unsent += data
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self.abort(rx.ConnectionError(f"Error writing to socket: {exc.strerror}"))
            raise rx.ConnectionError(f"Error writing to socket: {exc.strerror}") from None
        self.sent += sent
        if sent < len(data):
            self.unsent += data[sent:]
            self.loop.add_writer(self.fd, self.writable)

    def writable(self) -> None:
        try:
            sent = self.sock.send(self.unsent)
        except BlockingIOError:
            return
        except OSError as exc:
            self.abort(rx.ConnectionError(f"Error writing to socket: {exc.strerror}"))
            return
        self.sent += sent
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
        if self.tls is not None:
            plain = self._decrypt(data)
            if plain is None:
                return True
            data = plain
        reader = self.reader
        waiters = self.waiters
        ends = self.ends
        reader.feed(data)
        try:
            while waiters:
                reply = reader.gets()
                if reply is _PENDING:
                    break
                w = waiters.popleft()
                ends.popleft()
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

    def _decrypt(self, data: bytes) -> bytes | None:
        assert self.tls is not None
        self.incoming.write(data)
        chunks = []
        try:
            while True:
                chunk = self.tls.read(_READ)
                if not chunk:  # TLS close_notify
                    self.abort(rx.ConnectionError("Connection closed by server."))
                    return None
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            self.abort(rx.ConnectionError(f"TLS error: {exc.reason or exc}"))
            return None
        if self.outgoing.pending:  # e.g. a TLS 1.3 key update answer
            extra = self.outgoing.read()
            self.queued += len(extra)
            self._write(extra)
        return b"".join(chunks)

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
        """Close the socket and fail every pending command: with ``exc`` when it was never
        written whole, with :class:`LostReply` when it was (for a ``ConnectionError``)."""
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
        ends, self.ends = self.ends, deque()
        lost: BaseException | None = None
        if isinstance(exc, rx.ConnectionError) and not isinstance(exc, LostReply):
            lost = LostReply(str(exc))
        for w, end in zip(waiters, ends, strict=True):
            error = lost if lost is not None and end <= self.sent else exc
            if w.__class__ is _Batch:
                w.fail(error)
            elif not w.done():
                w.set_exception(error)
        self.release_writers()


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
        self._conn: _Conn | None = None
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
        data = b"".join(_pack(c) for c in commands)
        n = len(commands)

        def may() -> bool:
            return all(may_resend(c) for c in commands) if resend is None else resend

        try:
            return await self._many(await self._ready(), data, n)
        except rx.ConnectionError as exc:
            replies: list[Any] = await self._retry(lambda c: self._many(c, data, n), exc, may)
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
        if self._health and not conn.waiters and conn.loop.time() - conn.progress > self._health:
            conn = await self._health_check(conn)
        if conn.drained is not None:
            await conn.drained
            if conn.closed:
                raise rx.ConnectionError("Connection closed")
        return conn

    async def _health_check(self, conn: _Conn) -> _Conn:
        """PING an idle connection before use; a dead one is replaced (nothing was sent)."""
        async with self._lock:
            if conn.closed or conn.loop.time() - conn.progress <= self._health:
                return self._conn or await self._connect(locked=True)
            try:
                fut = conn.loop.create_future()
                conn.send(_pack(("PING",)), fut)
                await fut
                return conn
            except (rx.ConnectionError, rx.TimeoutError):
                conn.abort(rx.ConnectionError("health check failed"))
                return await self._connect(locked=True)

    async def _retry(
        self,
        attempt: Callable[[_Conn], Awaitable[Any]],
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

    async def _connect(self, *, locked: bool = False) -> _Conn:
        if self._closed:
            raise BackendUnavailable("redis client is closed")
        async with contextlib.nullcontext() if locked else self._lock:
            if self._conn is not None and not self._conn.closed:
                return self._conn
            conn: _Conn | None = None
            try:
                async with asyncio.timeout(self._connect_timeout):
                    sock, tls = await self._open_socket()
                    conn = _Conn(sock, self.timeout, tls)
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

    async def _open_socket(self) -> tuple[socket.socket, _Tls | None]:
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

    async def _tls_handshake(self, sock: socket.socket) -> _Tls:
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

    async def _handshake(self, conn: _Conn) -> None:
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
