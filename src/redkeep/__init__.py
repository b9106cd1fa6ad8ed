"""redkeep: durable cache and job-queue services on Redis, with a memory fallback."""

from redkeep.cache import (
    CacheConfig,
    CacheManager,
    CacheService,
    CacheStats,
    FallbackCache,
    MemoryCache,
    RedisCache,
)
from redkeep.config import Settings
from redkeep.errors import (
    BackendAuthError,
    BackendError,
    BackendResponseError,
    BackendTimeout,
    BackendUnavailable,
    CircuitOpen,
    ConfigError,
    InvalidKey,
    JobError,
    JobNotFound,
    LeaseLost,
    PayloadTooLarge,
    RedkeepError,
    SerializationError,
    is_transient,
)
from redkeep.resilience import CircuitBreaker, RetryPolicy
from redkeep.serialization import JsonSerializer, Serializer, TypeRegistry
from redkeep.services import Services, StartupError, create_services

__version__ = "0.1.0"

__all__ = [
    "BackendAuthError",
    "BackendError",
    "BackendResponseError",
    "BackendTimeout",
    "BackendUnavailable",
    "CacheConfig",
    "CacheManager",
    "CacheService",
    "CacheStats",
    "CircuitBreaker",
    "CircuitOpen",
    "ConfigError",
    "FallbackCache",
    "InvalidKey",
    "JobError",
    "JobNotFound",
    "JsonSerializer",
    "LeaseLost",
    "MemoryCache",
    "PayloadTooLarge",
    "RedisCache",
    "RedkeepError",
    "RetryPolicy",
    "SerializationError",
    "Serializer",
    "Services",
    "Settings",
    "StartupError",
    "TypeRegistry",
    "__version__",
    "create_services",
    "is_transient",
]
