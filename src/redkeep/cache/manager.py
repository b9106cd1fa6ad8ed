"""Named caches built from :class:`~redkeep.config.Settings`: :class:`CacheManager`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from redkeep.cache.base import TTL, CacheService, check_name, ttl_seconds
from redkeep.cache.fallback import FallbackCache
from redkeep.cache.invalidation import InvalidationListener
from redkeep.cache.memory import MemoryCache
from redkeep.cache.redis import RedisCache
from redkeep.cache.tiered import TieredCache
from redkeep.config import Settings
from redkeep.errors import ConfigError
from redkeep.redis.base import RedisClient
from redkeep.resilience import CircuitBreaker
from redkeep.serialization import JsonSerializer, Serializer

__all__ = ["CacheBackend", "CacheConfig", "CacheManager"]

CacheBackend = Literal["auto", "memory", "redis", "upstash", "fallback"]
"""``auto``: from Settings (fallback over Redis/Upstash when configured and
``cache_fallback`` is on, plain Redis when off, memory without a remote backend).
``redis``/``upstash``: the configured remote client without fallback. ``fallback``: the remote
client with a memory fallback. ``memory``: process-local only."""


@dataclass(frozen=True)
class CacheConfig:
    """Per-cache options; None fields take the Settings default."""

    default_ttl: float | None = None
    max_entries: int | None = None
    backend: CacheBackend = "auto"
    lock: bool = False
    """Use the cross-process Redis lock in ``get_or_set`` (``cache_lock_timeout`` long)."""
    l1: bool | None = None
    """Put an in-process L1 in front of this remote cache (None: ``cache_l1_enabled``)."""


class CacheManager:
    """Creates and owns named caches: ``manager.get("sessions")``.

    All remote caches share one Redis client and one circuit breaker (:attr:`breaker`, for
    health and metrics). The client is created from Settings on first need (through
    :func:`redkeep.redis.factory.create_client`) unless one is passed; a client the manager
    created is closed by :meth:`close`.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        client: RedisClient | None = None,
        serializer: Serializer | None = None,
        configs: dict[str, CacheConfig] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self.serializer = serializer or JsonSerializer(self.settings.max_payload_bytes)
        self.breaker = CircuitBreaker.from_settings("cache", self.settings)
        self._client = client
        self._owns_client = False
        self._configs: dict[str, CacheConfig] = {}
        self._caches: dict[str, CacheService] = {}
        self._invalidation: InvalidationListener | None = None
        self._closed = False
        for name, config in (configs or {}).items():
            self.configure(name, config)

    @property
    def invalidation(self) -> InvalidationListener | None:
        """The L1 invalidation listener (None until a cache with an L1 over RESP was made)."""
        return self._invalidation

    @property
    def client(self) -> RedisClient | None:
        """The shared remote client (None until a remote cache was created, or memory-only)."""
        return self._client

    def configure(
        self,
        name: str,
        config: CacheConfig | None = None,
        *,
        default_ttl: TTL = None,
        max_entries: int | None = None,
        backend: CacheBackend = "auto",
        lock: bool = False,
        l1: bool | None = None,
    ) -> None:
        """Set the options of cache ``name`` before its first :meth:`get`."""
        check_name(name)
        if name in self._caches:
            raise ValueError(f"cache {name!r} already exists; configure it before first use")
        if config is None:
            config = CacheConfig(ttl_seconds(default_ttl, None), max_entries, backend, lock, l1)
        if config.max_entries is not None and config.max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {config.max_entries}")
        if config.backend not in ("auto", "memory", "redis", "upstash", "fallback"):
            raise ValueError(f"unknown cache backend {config.backend!r}")
        self._configs[name] = config

    def get(self, name: str = "default") -> CacheService:
        """The cache called ``name``, created on first use."""
        cache = self._caches.get(name)
        if cache is None:
            if self._closed:
                raise RuntimeError("CacheManager is closed")
            cache = self._caches[name] = self._build(check_name(name))
        return cache

    __getitem__ = get

    def names(self) -> list[str]:
        """Names of the caches created so far."""
        return sorted(self._caches)

    def backend_of(self, name: str) -> Literal["memory", "redis", "fallback"]:
        """Which kind of cache ``name`` is (or would be)."""
        config = self._configs.get(name, CacheConfig())
        return self._kind(config)

    def _kind(self, config: CacheConfig) -> Literal["memory", "redis", "fallback"]:
        s = self.settings
        remote = self._client is not None or s.effective_backend != "memory"
        if config.backend == "memory":
            return "memory"
        if config.backend in ("redis", "upstash", "fallback"):
            if not remote:
                raise ConfigError(
                    f"cache backend {config.backend!r} needs REDKEEP_REDIS_URL or Upstash "
                    "credentials",
                    {"REDKEEP_BACKEND": f"cache backend {config.backend!r} needs a remote backend"},
                )
            return "fallback" if config.backend == "fallback" else "redis"
        if not remote:
            return "memory"
        return "fallback" if s.cache_fallback else "redis"

    def _remote_client(self) -> RedisClient:
        if self._client is None:
            from redkeep.redis.factory import create_client

            client = create_client(self.settings)
            if client is None:
                raise ConfigError(
                    "no Redis or Upstash backend is configured",
                    {"REDKEEP_BACKEND": "a remote cache needs a Redis URL or Upstash credentials"},
                )
            self._client = client
            self._owns_client = True
        return self._client

    def _build(self, name: str) -> CacheService:
        s = self.settings
        config = self._configs.get(name, CacheConfig())
        ttl = config.default_ttl if config.default_ttl is not None else s.cache_default_ttl
        max_entries = config.max_entries or s.cache_max_entries
        kind = self._kind(config)
        memory = MemoryCache(
            name,
            max_entries=max_entries,
            max_bytes=s.cache_max_bytes,
            default_ttl=ttl,
            max_key_length=s.cache_max_key_length,
            serializer=self.serializer,
        )
        if kind == "memory":
            return memory
        redis_cache = RedisCache(
            self._remote_client(),
            name,
            key_prefix=s.key_prefix,
            default_ttl=ttl,
            max_key_length=s.cache_max_key_length,
            serializer=self.serializer,
            lock_timeout=s.cache_lock_timeout if config.lock else None,
        )
        l2: RedisCache | FallbackCache = redis_cache
        if kind == "fallback":
            l2 = FallbackCache(redis_cache, memory, breaker=self.breaker)
        use_l1 = config.l1 if config.l1 is not None else s.cache_l1_enabled
        return self._tiered(l2) if use_l1 else l2

    def _tiered(self, l2: RedisCache | FallbackCache) -> CacheService:
        """``l2`` behind an L1, with the invalidation channel its transport allows."""
        s = self.settings
        client = l2.client if isinstance(l2, RedisCache) else l2.primary.client
        listener: InvalidationListener | None = None
        if client.capabilities.pubsub:
            if self._invalidation is None:
                if s.redis_url is None:
                    raise ConfigError(
                        "an L1 cache needs REDKEEP_REDIS_URL for its invalidation channel",
                        {"REDKEEP_REDIS_URL": "required by REDKEEP_CACHE_L1_ENABLED"},
                    )
                self._invalidation = InvalidationListener.from_settings(s)
            listener = self._invalidation
        elif not s.cache_l1_without_invalidation:
            return l2  # Upstash REST pushes nothing: no L1 unless the TTL bound is accepted
        return TieredCache(
            l2,
            listener,
            max_entries=s.cache_l1_max_entries,
            max_bytes=s.cache_l1_max_bytes,
            l1_ttl=s.cache_l1_ttl,
        )

    async def close(self) -> None:
        """Close every cache, then the client if this manager created it."""
        self._closed = True
        caches, self._caches = list(self._caches.values()), {}
        await asyncio.gather(*(c.close() for c in caches), return_exceptions=True)
        if self._invalidation is not None:
            listener, self._invalidation = self._invalidation, None
            await listener.close()
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def __aenter__(self) -> CacheManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
