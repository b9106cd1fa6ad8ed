"""A private Sentinel set on loopback: one primary, replicas and three sentinels.

Everything runs as child processes of the test run (``redis-server`` and ``redis-server
--sentinel``, the same binary) on free ``127.0.0.1`` ports in temporary directories, and is
stopped by PID. :func:`start_sentinels` waits until every sentinel knows the primary, its
replicas and the other sentinels, so that a failover can be agreed on.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.redis_server import HOST, RedisServer, _ping_once, free_port

__all__ = ["SENTINEL_DOWN_AFTER_MS", "SENTINEL_FAILOVER_MS", "SentinelSet", "start_sentinels"]

SERVICE = "redkeep-primary"
SENTINEL_DOWN_AFTER_MS = 1000
"""How long a primary must be silent before a sentinel calls it down."""
SENTINEL_FAILOVER_MS = 5000
"""Sentinels' failover timeout (also the wait between two failover attempts)."""


@dataclass
class SentinelSet:
    """The processes of one set: ``servers[0]`` starts as primary, the rest as its replicas."""

    servers: list[RedisServer] = field(default_factory=list)
    sentinels: list[RedisServer] = field(default_factory=list)
    service: str = SERVICE

    @property
    def url(self) -> str:
        """``redis+sentinel://`` URL naming the three sentinels and the service."""
        hosts = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    def primary_port(self) -> int:
        """The port the sentinels currently name as primary."""
        for sentinel in self.sentinels:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                out = sentinel.cli("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service, timeout=5)
                lines = out.split()
                if len(lines) == 2:
                    return int(lines[1])
        raise RuntimeError("no sentinel names a primary")

    def server_on(self, port: int) -> RedisServer:
        return next(s for s in self.servers if s.port == port)

    def stop(self) -> None:
        for process in [*self.sentinels, *self.servers]:
            process.cleanup()


class _SentinelProcess(RedisServer):
    """``redis-server <conf> --sentinel`` (a sentinel rewrites its own config file)."""

    def __init__(self, primary_port: int, service: str) -> None:
        self.primary_port = primary_port
        self.service = service
        super().__init__(port=free_port(), start=False)
        self._first_start()

    def _args(self) -> list[str]:
        conf = Path(self.dir) / "sentinel.conf"
        if not conf.exists():
            conf.write_text(
                "\n".join([
                    f"port {self.port}",
                    f"bind {HOST}",
                    "daemonize no",
                    "protected-mode no",
                    f"dir {self.dir}",
                    f"logfile {self.log_file}",
                    f"sentinel monitor {self.service} {HOST} {self.primary_port} 2",
                    f"sentinel down-after-milliseconds {self.service} {SENTINEL_DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {self.service} {SENTINEL_FAILOVER_MS}",
                    f"sentinel parallel-syncs {self.service} 1",
                    "",
                ])
            )  # fmt: skip
        return [self._binary(), str(conf), "--sentinel"]

    @staticmethod
    def _binary() -> str:
        from tests.support.redis_server import REDIS_SERVER

        return REDIS_SERVER


_FAST_SYNC = ["--repl-diskless-sync-delay", "0"]  # a (new) replica syncs at once


def _info(server: RedisServer, *args: str) -> str:
    try:
        return server.cli(*args, timeout=5)
    except (subprocess.SubprocessError, OSError):
        return ""


def start_sentinels(replicas: int = 1, timeout: float = 30.0) -> SentinelSet:
    """Start a primary, ``replicas`` replicas and three sentinels; wait until they agree."""
    group = SentinelSet()
    try:
        primary = RedisServer()
        group.servers.append(primary)
        for _ in range(replicas):
            group.servers.append(RedisServer(extra_args=["--replicaof", HOST, str(primary.port)]))
        for _ in range(3):
            group.sentinels.append(_SentinelProcess(primary.port, SERVICE))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _ready(group, replicas):
                return group
            time.sleep(0.2)
        raise RuntimeError(
            f"sentinel set did not settle: {[s.log_tail(5) for s in group.sentinels]}"
        )
    except BaseException:
        group.stop()
        raise


def _ready(group: SentinelSet, replicas: int) -> bool:
    primary = group.servers[0]
    if _info(primary, "INFO", "replication").count("state=online") != replicas:
        return False
    for sentinel in group.sentinels:
        if not _ping_once(sentinel.port, 0.5):
            return False
        master = _info(sentinel, "SENTINEL", "MASTER", group.service).split()
        fields = dict(zip(master[::2], master[1::2], strict=False))
        if fields.get("num-slaves") != str(replicas) or fields.get("num-other-sentinels") != "2":
            return False
    return True
