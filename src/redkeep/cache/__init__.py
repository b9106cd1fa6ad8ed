"""Cache services: one async API over memory, Redis (RESP, Cluster, Upstash) and fallback.

See docs/cache.md.
"""

from redkeep.cache.base import MISSING, CacheService, CacheStats
from redkeep.cache.fallback import FallbackCache
from redkeep.cache.manager import CacheConfig, CacheManager
from redkeep.cache.memory import MemoryCache
from redkeep.cache.redis import RedisCache, list_cache_names

__all__ = [
    "MISSING",
    "CacheConfig",
    "CacheManager",
    "CacheService",
    "CacheStats",
    "FallbackCache",
    "MemoryCache",
    "RedisCache",
    "list_cache_names",
]
