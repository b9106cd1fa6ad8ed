"""Cache services: one async API over memory, Redis (RESP, Cluster, Upstash), fallback
and tiered (in-process L1 over Redis).

See docs/cache.md.
"""

from redkeep.cache.base import MISSING, CacheService, CacheStats
from redkeep.cache.fallback import FallbackCache
from redkeep.cache.invalidation import InvalidationListener
from redkeep.cache.manager import CacheConfig, CacheManager
from redkeep.cache.memory import MemoryCache
from redkeep.cache.redis import RedisCache, list_cache_names
from redkeep.cache.tiered import TieredCache

__all__ = [
    "MISSING",
    "CacheConfig",
    "CacheManager",
    "CacheService",
    "CacheStats",
    "FallbackCache",
    "InvalidationListener",
    "MemoryCache",
    "RedisCache",
    "TieredCache",
    "list_cache_names",
]
