"""Redis transports behind one client interface.

- :class:`~redkeep.redis.base.RedisClient`: the protocol the cache and the queue use.
- :class:`~redkeep.redis.resp.RespClient`: redis-py asyncio, standalone or Cluster.
- :class:`~redkeep.redis.upstash.UpstashRestClient`: Upstash's REST API over httpx.
- :func:`~redkeep.redis.factory.create_client`: the client the settings ask for.
- :class:`~redkeep.redis.connection.ConnectionManager`: startup backoff and health pings.
"""

from redkeep.redis.base import Capabilities, Command, CommandObserver, RedisClient, Script
from redkeep.redis.connection import ConnectionManager
from redkeep.redis.factory import create_client
from redkeep.redis.resp import RespClient
from redkeep.redis.upstash import UpstashRestClient

__all__ = [
    "Capabilities",
    "Command",
    "CommandObserver",
    "ConnectionManager",
    "RedisClient",
    "RespClient",
    "Script",
    "UpstashRestClient",
    "create_client",
]
