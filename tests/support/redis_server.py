"""Private ``redis-server`` processes for tests that need restarts, AOF, auth, faults or TLS.

Each :class:`RedisServer` runs ``redis-server`` in the foreground (``daemonize no``) as a child
process on a free loopback port with its own temp dir; it is stopped by PID, never by name. Tests
get servers through the ``redis_server_factory`` fixture, which stops every server it started at
teardown, even when the test failed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

__all__ = ["REDIS_SERVER", "RedisServer", "free_port", "wait_for_ping"]

REDIS_SERVER = shutil.which("redis-server") or "redis-server"
HOST = "127.0.0.1"


_LIVE: weakref.WeakSet[RedisServer] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    """Safety net: kill (by PID) any server a crashed test run did not stop."""
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.kill()


def free_port(*, with_bus: bool = False) -> int:
    """A currently unused loopback TCP port (and ``port + 10000`` free too when ``with_bus``)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if not with_bus:
            return port
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bus:
            try:
                bus.bind((HOST, port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free loopback port found")


def _ping_once(port: int, timeout: float) -> bool:
    """True when something on ``port`` answers PING like Redis (PONG, or an auth error)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH", b"-WRONGPASS", b"-NOPERM"))


def wait_for_ping(port: int, timeout: float = 10.0) -> bool:
    """Poll ``port`` until Redis answers PING (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ping_once(port, timeout=0.5):
            return True
        time.sleep(0.02)
    return False


class RedisServer:
    """One private redis-server child process on a free loopback port.

    Options: ``appendonly`` + ``appendfsync`` ("always" / "everysec" / "no"), ``requirepass``,
    ``acl_user`` (``(user, password)``: an ACL user with full rights; the default user is then
    disabled unless ``requirepass`` is also given), ``maxmemory`` (e.g. ``"2mb"``) with
    ``maxmemory_policy``, ``tls`` (``(cert, key, ca)`` paths: serve TLS on :attr:`tls_port`),
    ``cluster`` (cluster-enabled node), ``extra_args`` (more ``--name value`` arguments).
    The server starts in :meth:`start` (called by the constructor unless ``start=False``).
    """

    def __init__(
        self,
        *,
        appendonly: bool = False,
        appendfsync: str = "everysec",
        requirepass: str | None = None,
        acl_user: tuple[str, str] | None = None,
        maxmemory: str | int | None = None,
        maxmemory_policy: str | None = None,
        tls: tuple[str, str, str] | None = None,
        cluster: bool = False,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        data_dir: str | Path | None = None,
        start: bool = True,
    ) -> None:
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.requirepass = requirepass
        self.acl_user = acl_user
        self.maxmemory = maxmemory
        self.maxmemory_policy = maxmemory_policy
        self.tls = tls
        self.cluster = cluster
        self.extra_args = list(extra_args)
        self._fixed_port = port is not None
        self.port = port or free_port(with_bus=cluster)
        self.tls_port: int | None = free_port() if tls else None
        self._own_dir = data_dir is None
        self.dir = Path(data_dir or tempfile.mkdtemp(prefix="redkeep-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        if start:
            self._first_start()

    def _first_start(self) -> None:
        # Another process may grab the free port between choosing it and binding: pick again.
        for attempt in range(3):
            try:
                self.start()
                return
            except RuntimeError:
                if self._fixed_port or attempt == 2 or "in use" not in self.log_tail():
                    raise
                self.port = free_port(with_bus=self.cluster)
                if self.tls is not None:
                    self.tls_port = free_port()

    # -- addresses -----------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return HOST

    @property
    def pid(self) -> int | None:
        """PID of the running server process, None when stopped."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    @property
    def url(self) -> str:
        """``redis://`` URL with the credentials this server requires (ACL user first)."""
        auth = ""
        if self.acl_user is not None:
            auth = f"{self.acl_user[0]}:{self.acl_user[1]}@"
        elif self.requirepass is not None:
            auth = f":{self.requirepass}@"
        return f"redis://{auth}{HOST}:{self.port}/0"

    @property
    def url_no_auth(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def tls_url(self) -> str:
        if self.tls_port is None:
            raise RuntimeError("server was started without tls")
        return f"rediss://{HOST}:{self.tls_port}/0"

    @property
    def log_file(self) -> Path:
        return self.dir / "redis.log"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- lifecycle -----------------------------------------------------------------------------
    def _args(self) -> list[str]:
        args = [
            REDIS_SERVER,
            "--bind", HOST,
            "--port", str(self.port),
            "--dir", str(self.dir),
            "--daemonize", "no",
            "--save", "",
            "--logfile", str(self.log_file),
            "--protected-mode", "no",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
        ]  # fmt: skip
        if self.requirepass is not None:
            args += ["--requirepass", self.requirepass]
        if self.acl_user is not None:
            user, password = self.acl_user
            # Separate argv words: redis-server quotes a single argument that has spaces.
            args += ["--user", user, "on", f">{password}", "~*", "&*", "+@all"]
            if self.requirepass is None:
                args += ["--user", "default", "off"]
        if self.maxmemory is not None:
            args += ["--maxmemory", str(self.maxmemory)]
        if self.maxmemory_policy is not None:
            args += ["--maxmemory-policy", self.maxmemory_policy]
        if self.tls is not None:
            cert, key, ca = self.tls
            args += [
                "--tls-port", str(self.tls_port),
                "--tls-cert-file", cert,
                "--tls-key-file", key,
                "--tls-ca-cert-file", ca,
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        if self.cluster:
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000",
            ]  # fmt: skip
        return args + self.extra_args

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the process and wait until it answers PING; raise with its log tail otherwise."""
        if self.pid is not None:
            return self
        self.proc = subprocess.Popen(
            self._args(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.paused = False
        _LIVE.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                self.proc = None
                raise RuntimeError(
                    f"redis-server on port {self.port} exited at start:\n{err}\n{self.log_tail()}"
                )
            if _ping_once(self.port, timeout=0.5):
                return self
            time.sleep(0.02)
        self._terminate(kill=True)
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING in {timeout}s")

    def _terminate(self, *, kill: bool, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            if kill:
                os.kill(proc.pid, signal.SIGKILL)
            else:
                if self.paused:
                    os.kill(proc.pid, signal.SIGCONT)
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        if proc.stderr is not None:
            proc.stderr.close()
        self.proc = None
        self.paused = False

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM; the AOF is flushed). No-op when already stopped."""
        self._terminate(kill=False)

    def kill(self) -> None:
        """Crash the server with SIGKILL (no shutdown work at all)."""
        self._terminate(kill=True)

    def restart(self, *, graceful: bool = True) -> RedisServer:
        """Stop (or kill) and start again on the same port with the same data dir."""
        self._terminate(kill=not graceful)
        return self.start()

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): connections stay open but nothing answers."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        """Unfreeze a paused process (SIGCONT)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def cleanup(self) -> None:
        """Kill the process if still running and remove the temp dir this server created."""
        with contextlib.suppress(Exception):
            self._terminate(kill=True)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def cli(self, *args: str, timeout: float = 10.0) -> str:
        """Run ``redis-cli`` against this server (with its credentials) and return stdout."""
        cmd = ["redis-cli", "-h", HOST, "-p", str(self.port)]
        env = dict(os.environ)
        if self.acl_user is not None:
            cmd += ["--user", self.acl_user[0]]
            env["REDISCLI_AUTH"] = self.acl_user[1]
        elif self.requirepass is not None:
            env["REDISCLI_AUTH"] = self.requirepass
        out = subprocess.run(
            [*cmd, *args], capture_output=True, text=True, timeout=timeout, env=env, check=True
        )
        return out.stdout

    def __repr__(self) -> str:
        return f"RedisServer(port={self.port}, pid={self.pid})"

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
