"""Redis transports behind one client interface.

- :class:`~redkeep.redis.base.RedisClient`: the protocol the cache and the queue use.
- :class:`~redkeep.redis.mux.MuxClient`: the fast path, one multiplexed connection to a
  standalone server (TCP, TLS, Unix socket).
- :class:`~redkeep.redis.redispy.RedisPyClient`: the reference, redis-py's public API
  (standalone, Cluster, Sentinel).
- :class:`~redkeep.redis.upstash.UpstashRestClient`: Upstash's REST API over httpx.
- :func:`~redkeep.redis.factory.create_client`: the client the settings ask for.
- :mod:`~redkeep.redis.policy`: what may be re-sent, what blocks, what changes a connection.
- :mod:`~redkeep.redis.urls`: the connection URL and its options.
- :class:`~redkeep.redis.connection.ConnectionManager`: startup backoff and health pings.
"""

from redkeep.redis.base import Capabilities, Command, CommandObserver, RedisClient, Script
from redkeep.redis.connection import ConnectionManager
from redkeep.redis.factory import create_client
from redkeep.redis.mux import MuxClient
from redkeep.redis.redispy import RedisPyClient
from redkeep.redis.upstash import UpstashRestClient

__all__ = [
    "Capabilities",
    "Command",
    "CommandObserver",
    "ConnectionManager",
    "MuxClient",
    "RedisClient",
    "RedisPyClient",
    "Script",
    "UpstashRestClient",
    "create_client",
]
