"""A loopback TCP proxy between a client and redis-server that loses replies on demand.

:class:`FaultProxy` listens on a free ``127.0.0.1`` port and relays bytes both ways, in a
thread of its own (its own event loop), so async tests, sync tests and worker subprocesses can
all go through it. It understands just enough RESP to count commands and replies, which makes
its faults exact:

- **Lost reply** (:meth:`FaultProxy.drop_reply`, or at random with ``drop_rate``): a command is
  forwarded to the server, the server runs it, and once its whole reply has reached the proxy
  the connection is cut (client side first) before that reply is forwarded. Replies to earlier
  commands on the connection are delivered; the client never learns the command's outcome.
- **Lost request** (``before_server=True``): the connection is cut instead of forwarding the
  command, so the server never sees it (the client wrote it all the same).
- :meth:`FaultProxy.cut_all`: close every relayed connection now; :attr:`FaultProxy.refusing`:
  accept and close new connections at once.
- ``raw=True`` relays bytes without reading RESP (a replication link, whose RDB transfer is not
  RESP); only :meth:`~FaultProxy.cut_all` and ``refusing`` apply then. Bytes the proxy holds when
  it cuts are lost, as on a broken network link.

Every fault is recorded in :attr:`FaultProxy.dropped` as ``(command name, ran on server)``.
Commands split over several reads and pipelines of many commands are handled; inline commands
(``PING\\r\\n``) count as commands too. RESP3 push messages are not expected (no pub/sub).

Example::

    with FaultProxy(server.port) as proxy:
        client = open_client(proxy.url())
        proxy.drop_reply(command="INCR")
        ...  # the INCR runs once on the server; the client sees its connection lost
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["FaultProxy", "frame_end"]

HOST = "127.0.0.1"
_READ = 256 * 1024


def frame_end(buf: bytes | bytearray, pos: int = 0) -> int | None:
    """End offset of the complete RESP2/RESP3 frame starting at ``pos``; None if incomplete."""
    if pos >= len(buf):
        return None
    kind = buf[pos : pos + 1]
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return None
    if kind not in b"$=!*~>%|":  # simple frames, and inline commands (no type byte)
        return nl + 2
    n = int(buf[pos + 1 : nl])
    if kind in b"$=!":
        end = nl + 2 + n + 2 if n >= 0 else nl + 2
        return end if len(buf) >= end else None
    p: int | None = nl + 2
    for _ in range(max(n, 0) * (2 if kind in b"%|" else 1)):
        p = frame_end(buf, p)  # type: ignore[arg-type]
        if p is None:
            return None
    if kind == b"|":  # an attribute precedes the reply it describes
        return frame_end(buf, p)  # type: ignore[arg-type]
    return p


def _command_name(frame: bytes) -> str:
    """Upper-case name of the command in one request frame (array of bulk strings or inline)."""
    if not frame.startswith(b"*"):
        return frame.split(None, 1)[0].decode(errors="replace").upper() if frame.strip() else ""
    first = frame.find(b"\r\n")
    length_end = frame.find(b"\r\n", first + 2)
    if first < 0 or length_end < 0 or frame[first + 2 : first + 3] != b"$":
        return ""
    n = int(frame[first + 3 : length_end])
    return frame[length_end + 2 : length_end + 2 + n].decode(errors="replace").upper()


@dataclass(eq=False)
class _Relay:
    """One client connection and its upstream connection."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    sent: int = 0  # commands forwarded to the server
    replied: int = 0  # replies the server sent back (complete frames)
    cut_at: dict[int, str] = field(default_factory=dict)  # command number -> name
    closed: bool = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.client.close()  # the client side first: no reply byte may slip through
            self.upstream.close()


class FaultProxy:
    """Relays ``127.0.0.1:<port>`` to ``upstream_host:upstream_port`` and injects faults.

    ``drop_rate`` is the probability that any forwarded command (matching ``drop_command``
    when set) loses its reply; the random choices come from ``seed``. Stop it with
    :meth:`close` (or use it as a context manager).
    """

    def __init__(
        self,
        upstream_port: int,
        upstream_host: str = HOST,
        *,
        drop_rate: float = 0.0,
        drop_command: str | None = None,
        seed: int = 0,
        raw: bool = False,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.raw = raw
        self.drop_rate = drop_rate
        self.drop_command = drop_command.upper() if drop_command else None
        self.refusing = False
        self.dropped: list[tuple[str, bool]] = []
        """Faults injected so far: ``(command name, whether the server received it)``."""
        self.commands = 0
        """Commands forwarded to the server so far."""
        self.connections = 0
        """Client connections accepted so far."""
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._armed: list[tuple[str | None, bool]] = []
        self._relays: set[_Relay] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="fault-proxy", daemon=True
        )
        self._thread.start()
        started.wait(10)
        if self._server is None:
            raise RuntimeError("fault proxy did not start")
        self.port: int = self._server.sockets[0].getsockname()[1]

    # -- faults ---------------------------------------------------------------------------------
    def drop_reply(
        self, count: int = 1, command: str | None = None, *, before_server: bool = False
    ) -> None:
        """Lose the reply of the next ``count`` commands (named ``command``, when given).

        With ``before_server`` the command itself is lost instead: the connection is cut
        without forwarding it.
        """
        with self._lock:
            name = command.upper() if command else None
            self._armed.extend([(name, before_server)] * count)

    def cut_all(self) -> None:
        """Close every relayed connection now."""
        self._loop.call_soon_threadsafe(self._cut_all)

    def url(self, db: int = 0, scheme: str = "redis", userinfo: str = "") -> str:
        """``redis://[userinfo@]127.0.0.1:<proxy port>/<db>``."""
        auth = f"{userinfo}@" if userinfo else ""
        return f"{scheme}://{auth}{HOST}:{self.port}/{db}"

    @property
    def armed(self) -> int:
        """Faults requested with :meth:`drop_reply` that have not happened yet."""
        with self._lock:
            return len(self._armed)

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop listening, close every connection and end the proxy's thread."""
        if not self._loop.is_closed() and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaultProxy(port={self.port}, upstream={self.upstream[1]})"

    # -- inside the proxy's thread ----------------------------------------------------------------
    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._accept, HOST, 0)
            )
        finally:
            started.set()
        self._loop.run_forever()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        self._cut_all()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    def _cut_all(self) -> None:
        for relay in list(self._relays):
            relay.close()

    def _fault_for(self, name: str) -> tuple[bool, bool] | None:
        """``(cut, before_server)`` for the next command ``name``, or None to forward it."""
        with self._lock:
            for i, (wanted, before) in enumerate(self._armed):
                if wanted is None or wanted == name:
                    del self._armed[i]
                    return True, before
            wanted = self.drop_command in (None, name)
            if self.drop_rate and wanted and self._rng.random() < self.drop_rate:
                return True, False
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.refusing:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        relay = _Relay(writer, up_writer)
        self._relays.add(relay)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            await asyncio.gather(self._requests(relay, reader), self._replies(relay, up_reader))
        finally:
            relay.close()
            self._relays.discard(relay)

    async def _requests(self, relay: _Relay, reader: asyncio.StreamReader) -> None:
        if self.raw:
            return await self._copy(relay, reader, relay.upstream)
        buf = bytearray()
        with contextlib.suppress(OSError, ConnectionError):
            while not relay.closed:
                data = await reader.read(_READ)
                if not data:
                    break
                buf += data
                pos = 0
                while (end := frame_end(buf, pos)) is not None:
                    name = _command_name(bytes(buf[pos:end]))
                    fault = self._fault_for(name)
                    if fault is not None and fault[1]:  # lose the request itself
                        relay.upstream.write(bytes(buf[:pos]))
                        self.dropped.append((name, False))
                        relay.close()
                        return
                    relay.sent += 1
                    self.commands += 1
                    if fault is not None:
                        relay.cut_at[relay.sent] = name
                    pos = end
                if pos:
                    relay.upstream.write(bytes(buf[:pos]))
                    del buf[:pos]
                    await relay.upstream.drain()
        relay.close()

    async def _replies(self, relay: _Relay, reader: asyncio.StreamReader) -> None:
        if self.raw:
            return await self._copy(relay, reader, relay.client)
        buf = bytearray()
        with contextlib.suppress(OSError, ConnectionError):
            while not relay.closed:
                data = await reader.read(_READ)
                if not data:
                    break
                buf += data
                pos = 0
                while (end := frame_end(buf, pos)) is not None:
                    relay.replied += 1
                    name = relay.cut_at.pop(relay.replied, None)
                    if name is not None:  # the server ran it: deliver what came before only
                        relay.client.write(bytes(buf[:pos]))
                        self.dropped.append((name, True))
                        relay.close()
                        return
                    pos = end
                if pos:
                    relay.client.write(bytes(buf[:pos]))
                    del buf[:pos]
                    await relay.client.drain()
        relay.close()

    @staticmethod
    async def _copy(
        relay: _Relay, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while not relay.closed and (data := await reader.read(_READ)):
                writer.write(data)
                await writer.drain()
        relay.close()


@contextlib.contextmanager
def fault_proxy(upstream_port: int, **options: object) -> Iterator[FaultProxy]:
    """``with fault_proxy(port) as proxy:`` a :class:`FaultProxy` closed at the end."""
    proxy = FaultProxy(upstream_port, **options)  # type: ignore[arg-type]
    try:
        yield proxy
    finally:
        proxy.close()
