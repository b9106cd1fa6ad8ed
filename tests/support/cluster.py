"""A private 3-master Redis Cluster on free loopback ports, for the ``redis_cluster`` fixture."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field

from tests.support.redis_server import HOST, RedisServer

__all__ = ["RedisClusterFixture", "start_cluster"]


@dataclass
class RedisClusterFixture:
    """Three cluster-enabled :class:`RedisServer` masters covering all 16384 slots."""

    servers: list[RedisServer] = field(default_factory=list)

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    @property
    def url(self) -> str:
        """URL of the first node (cluster clients discover the others)."""
        return f"redis://{HOST}:{self.servers[0].port}/0"

    @property
    def pids(self) -> list[int | None]:
        return [s.pid for s in self.servers]

    def stop(self) -> None:
        for server in self.servers:
            server.cleanup()


def _cluster_ok(server: RedisServer) -> bool:
    try:
        return "cluster_state:ok" in server.cli("CLUSTER", "INFO", timeout=5)
    except (subprocess.SubprocessError, OSError):
        return False


def start_cluster(masters: int = 3, timeout: float = 30.0) -> RedisClusterFixture:
    """Start ``masters`` nodes, join them with ``redis-cli --cluster create``, wait for ok."""
    cluster = RedisClusterFixture()
    try:
        for _ in range(masters):
            cluster.servers.append(RedisServer(cluster=True))
        nodes = [f"{HOST}:{port}" for port in cluster.ports]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *nodes,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(_cluster_ok(s) for s in cluster.servers):
                return cluster
            time.sleep(0.2)
        raise RuntimeError(f"cluster on ports {cluster.ports} did not reach cluster_state:ok")
    except BaseException:
        cluster.stop()
        raise
