"""The wire under :class:`~redkeep.redis._multiplexer.Multiplexer`: one non-blocking socket.

:class:`Conn` writes packed commands (through an ``ssl.SSLObject`` over memory buffers for
TLS), reads replies with hiredis and hands each to the oldest waiter. It counts the bytes the
kernel accepted, so when the connection is lost it knows which commands were written whole:
those fail with :class:`LostReply` (they may have run), the others with a plain
``ConnectionError``. Sockets, :mod:`ssl` and hiredis' public ``Reader``/``pack_command`` only;
from redis-py nothing but its exception classes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
from redis import exceptions as rx

from redkeep.redis.errors import response_error

__all__ = ["HIGH_WATER", "Batch", "Conn", "LostReply", "Tls", "pack", "ssl_context"]

_PENDING = object()  # hiredis' "not enough data" marker
_READ = 256 * 1024
HIGH_WATER = 4 * 1024 * 1024  # unsent bytes above which new commands wait for the socket


class LostReply(rx.ConnectionError):
    """The connection was lost after the command was written whole: it may have run."""


def pack(args: Sequence[Any]) -> bytes:
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


Tls = tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]
"""A TLS session over memory buffers: the object, its incoming and its outgoing buffer."""


class Batch:
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


class Conn:
    """One connected socket, its reply parser and the queue of waiting callers.

    ``queued`` counts the bytes handed to :meth:`send` (ciphertext with TLS), ``sent`` those
    the kernel accepted; ``ends[i]`` is where the command of ``waiters[i]`` ends in that
    stream, so a command is written whole once ``sent >= ends[i]``.
    """

    def __init__(self, sock: socket.socket, timeout: float, tls: Tls | None) -> None:
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
        self.on_close: Callable[[Conn], None] = lambda conn: None
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
        if len(self.unsent) > HIGH_WATER and self.drained is None:
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
                if w.__class__ is Batch:
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
            if w.__class__ is Batch:
                w.fail(error)
            elif not w.done():
                w.set_exception(error)
        self.release_writers()
