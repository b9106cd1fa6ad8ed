"""Typed settings read from ``REDKEEP_*`` environment variables (and an optional ``.env``).

Every field is documented in ``docs/configuration.md``; a test keeps the two in step.
Constructing :class:`Settings` from an invalid environment raises
:class:`~redkeep.errors.ConfigError` naming every bad variable at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from redkeep.config_checks import (
    check_redis_url,
    check_upstash_url,
    invalid_settings,
    redact_url,
    settings_problems,
)
from redkeep.errors import register_secret

__all__ = ["Settings", "redact_url"]

ENV_PREFIX = "REDKEEP_"

Seconds = float


def _lru_bound(default: int, kept: str) -> Any:
    """A field bounding what an in-process LRU cache keeps (> 0), described as ``<kept> before
    LRU eviction.``"""
    return Field(default, gt=0, description=f"{kept} before LRU eviction.")


class Settings(BaseSettings):
    """All redkeep settings. Each field ``name`` is read from ``REDKEEP_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # -- backend & connection -----------------------------------------------------------------
    backend: Literal["auto", "memory", "redis", "upstash"] = Field(
        "auto",
        description="Storage backend. auto = redis when a Redis URL is set, upstash when Upstash "
        "credentials are set, memory otherwise.",
    )
    redis_url: SecretStr | None = Field(
        None,
        description="Redis URL: redis://, rediss:// (TLS), unix:// or redis+sentinel://"
        "host:port[,host:port]/service[/db]. May carry user:password; options in "
        "docs/configuration.md.",
    )
    redis_cluster: bool = Field(False, description="Use the Redis Cluster client for redis_url.")
    redis_transport: Literal["auto", "mux", "redis-py"] = Field(
        "auto",
        description="RESP transport: mux (multiplexed fast path, standalone only), redis-py "
        "(redis-py's public API: standalone, Cluster, Sentinel) or auto (mux for a standalone "
        "server, redis-py otherwise).",
    )
    upstash_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDKEEP_UPSTASH_URL", "UPSTASH_REDIS_REST_URL"),
        description="Upstash REST URL (also read from UPSTASH_REDIS_REST_URL).",
    )
    upstash_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("REDKEEP_UPSTASH_TOKEN", "UPSTASH_REDIS_REST_TOKEN"),
        description="Upstash REST token (also read from UPSTASH_REDIS_REST_TOKEN).",
    )
    key_prefix: str = Field(
        "redkeep", description="Prefix of every Redis key redkeep writes.", min_length=1
    )
    connect_timeout: Seconds = Field(5.0, gt=0, description="Seconds to establish a connection.")
    command_timeout: Seconds = Field(
        2.0, gt=0, description="Seconds to wait for one command reply."
    )
    connect_max_wait: Seconds = Field(
        30.0,
        ge=0,
        description="Total seconds to keep retrying the first connection at startup (strict "
        "startup waits this long for an unreachable backend before it gives up).",
    )
    max_connections: int = Field(
        50,
        gt=0,
        description="Pool size per client for blocking and MULTI/EXEC commands (all commands "
        "with TLS); other commands share one multiplexed connection.",
    )
    retry_attempts: int = Field(
        3, ge=0, description="Retries of a command after a transient connection error."
    )
    retry_base_delay: Seconds = Field(
        0.05, gt=0, description="First retry delay; doubles per attempt with full jitter."
    )
    retry_max_delay: Seconds = Field(2.0, gt=0, description="Cap on one retry delay.")
    busy_poll: Seconds = Field(
        0.0002,
        ge=0,
        le=0.01,
        description="Seconds a lone command polls its socket before it waits on the event loop "
        "(saves a CPU wake-up per round trip; costs at most this much CPU); 0 disables. "
        "A worker lets its shared connection poll only while no job runs.",
    )
    health_check_interval: Seconds = Field(
        5.0, ge=0, description="Seconds between background health pings; 0 disables them."
    )
    breaker_failure_threshold: int = Field(
        5, ge=1, description="Transient failures within breaker_window that open the breaker."
    )
    breaker_window: Seconds = Field(
        10.0, gt=0, description="Seconds over which breaker failures are counted."
    )
    breaker_reset_timeout: Seconds = Field(
        5.0, gt=0, description="Seconds the breaker stays open before a half-open probe."
    )
    max_payload_bytes: int = Field(
        4 * 1024 * 1024, gt=0, description="Largest encoded cache value or job payload, in bytes."
    )

    # -- cache ---------------------------------------------------------------------------------
    cache_default_ttl: Seconds | None = Field(
        None, gt=0, description="Default cache TTL in seconds; unset means no expiry."
    )
    cache_max_entries: int = _lru_bound(10_000, "Entries kept per in-memory cache")
    cache_max_bytes: int = _lru_bound(
        64 * 1024 * 1024,
        "Bytes of keys and encoded values kept per in-memory cache (the memory backend and the "
        "fallback of a Redis cache)",
    )
    cache_max_key_length: int = Field(1024, gt=0, description="Longest accepted cache key.")
    cache_fallback: bool = Field(
        True, description="Wrap Redis caches in a memory fallback used while Redis is down."
    )
    cache_lock_timeout: Seconds = Field(
        10.0, gt=0, description="Lifetime of the cross-process get_or_set lock, in seconds."
    )

    cache_l1_enabled: bool = Field(
        False,
        description="Put an in-process L1 (TieredCache) in front of every Redis cache, kept "
        "coherent across processes by Redis client tracking (see docs/cache.md).",
    )
    cache_l1_max_entries: int = _lru_bound(10_000, "Entries one cache's L1 keeps")
    cache_l1_max_bytes: int = _lru_bound(
        64 * 1024 * 1024, "Approximate bytes (keys + encoded values) one cache's L1 keeps"
    )
    cache_l1_ttl: Seconds = Field(
        5.0,
        gt=0,
        description="Longest time an entry stays in L1 (never past its Redis expiry); the "
        "staleness bound where no invalidation channel exists.",
    )
    cache_l1_max_lag: Seconds = Field(
        1.0,
        gt=0,
        description="Staleness bound of L1 reads: L1 is bypassed while the invalidation "
        "channel's last acknowledged heartbeat is older than this (heartbeats every "
        "max_lag/4).",
    )
    cache_l1_without_invalidation: bool = Field(
        False,
        description="Allow L1 over Upstash REST, which cannot push invalidations: L1 reads may "
        "then be up to cache_l1_ttl stale. Off: Upstash caches get no L1.",
    )

    # -- queue ---------------------------------------------------------------------------------
    queue_concurrency: int = Field(10, gt=0, description="Jobs a worker runs at once.")
    queue_lease: Seconds = Field(
        30.0, gt=0, description="Seconds a claimed job is leased before another worker may run it."
    )
    queue_grace_period: Seconds = Field(
        10.0, ge=0, description="Seconds a stopping worker waits for active jobs."
    )
    queue_max_attempts: int = Field(3, ge=1, description="Default attempts per job.")
    queue_backoff_base: Seconds = Field(1.0, gt=0, description="First retry delay of a job.")
    queue_backoff_max: Seconds = Field(3600.0, gt=0, description="Cap on a job's retry delay.")
    queue_completed_ttl: Seconds = Field(
        3600.0, ge=0, description="Seconds completed jobs are retained."
    )
    queue_completed_max: int = Field(10_000, ge=0, description="Completed jobs retained at most.")
    queue_failed_ttl: Seconds = Field(
        7 * 24 * 3600.0, ge=0, description="Seconds failed jobs are retained."
    )
    queue_failed_max: int = Field(100_000, ge=0, description="Failed jobs retained at most.")
    queue_memory_max_bytes: int = Field(
        256 * 1024 * 1024,
        gt=0,
        description="Bytes of jobs (payloads, results, errors and bookkeeping) one memory-backend "
        "queue holds; an enqueue beyond it fails with QueueFull (HTTP 503 queue_full).",
    )
    queue_executor: Literal["thread", "process"] = Field(
        "thread",
        description="Where workers run sync handlers: thread (a pool of concurrency threads; "
        "a timed-out thread cannot be stopped) or process (child processes, killed on timeout; "
        "handlers must be importable by name).",
    )
    queue_poll_max_rate: float = Field(
        20.0, gt=0, description="Ceiling on idle polls per second where blocking pops are absent."
    )
    queue_outbox: Path | None = Field(
        None,
        description="Path of the enqueue outbox, a local SQLite file: an enqueue that cannot "
        "reach Redis (connection refused, timeout, breaker open) is written there and returned "
        "with status outbox, then relayed to Redis with the same id when it is back. Processes "
        "may share the file (one relay round at a time). Unset: off (such enqueues raise).",
    )
    queue_outbox_max_jobs: int = Field(
        100_000, gt=0, description="Jobs the enqueue outbox holds at most (all queues)."
    )
    queue_outbox_max_bytes: int = Field(
        256 * 1024 * 1024,
        gt=0,
        description="Bytes of jobs (payload, name, id, options) the enqueue outbox holds at most.",
    )
    queue_min_replicas: int = Field(
        0,
        ge=0,
        description="Replicas that must confirm (WAIT) every enqueue and every worker step "
        "(which records finished jobs) before it returns, so that a failover to a replica "
        "loses none of them; 0 returns once the primary has the write (Redis replicates "
        "asynchronously). Redis standalone or Sentinel only: refused with Cluster, Upstash and "
        "the memory backend. See docs/queue.md, Failover to a replica.",
    )
    queue_replica_timeout: Seconds = Field(
        1.0,
        gt=0,
        description="Seconds an enqueue or worker step waits for REDKEEP_QUEUE_MIN_REPLICAS "
        "replicas before failing with ReplicationTimeout (the write stays on the primary: "
        "repeating it with the same job id is safe; workers re-send their step).",
    )

    # -- service -------------------------------------------------------------------------------
    startup: Literal["strict", "degraded"] = Field(
        "degraded",
        description="strict: wait up to REDKEEP_CONNECT_MAX_WAIT for the backend, then refuse to "
        "start when it is unreachable or unusable; degraded: start at once on the fallback.",
    )
    api_token: SecretStr | None = Field(
        None, description="Bearer token required by the HTTP API (all routes but /health)."
    )
    http_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names the HTTP service answers besides IP addresses, localhost and "
        "its --host, comma-separated; '.example.com' allows a domain and its subdomains, '*' "
        "any name. Other Host headers get 400 (DNS-rebinding protection); with an API token "
        "and no names set, any host is answered.",
    )
    http_body_timeout: Seconds = Field(
        30.0,
        gt=0,
        description="Seconds a client has to send a whole request body; slower bodies get 408 "
        "and the connection is closed.",
    )
    ui_enabled: bool = Field(
        True, description="Serve the web dashboard at /ui (same token as the API)."
    )
    ui_session_ttl: Seconds = Field(
        8 * 3600.0,
        gt=0,
        le=30 * 86400,
        description="Seconds a dashboard login lasts; logging out ends it sooner.",
    )
    ui_refresh_interval: Seconds = Field(
        2.0,
        ge=0.5,
        le=3600,
        description="Seconds between two refreshes of the dashboard's live counts and lists "
        "(paused while the browser tab is hidden).",
    )
    log_format: Literal["text", "json"] = Field("text", description="Log line format.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of redkeep's loggers."
    )

    @field_validator("key_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if any(c in value for c in "{}*? \t\n"):
            raise ValueError("must not contain braces, glob characters or whitespace")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        check_redis_url(value.get_secret_value())
        return value

    @field_validator("upstash_url")
    @classmethod
    def _check_upstash_url(cls, value: str | None) -> str | None:
        return check_upstash_url(value) if value else None

    @field_validator("upstash_token", "api_token")
    @classmethod
    def _remember_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # an empty variable means "not set"
        register_secret(value.get_secret_value())
        return value

    @field_validator("queue_outbox", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("http_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise invalid_settings(settings_problems(exc, Settings), counted=True) from None
        if self.backend == "redis" and self.redis_url is None:
            raise invalid_settings({"REDKEEP_REDIS_URL": "required when REDKEEP_BACKEND=redis"})
        if self.backend == "upstash" and (self.upstash_url is None or self.upstash_token is None):
            reason = "required when REDKEEP_BACKEND=upstash"
            raise invalid_settings(
                {
                    name: reason
                    for name, value in (
                        ("REDKEEP_UPSTASH_URL", self.upstash_url),
                        ("REDKEEP_UPSTASH_TOKEN", self.upstash_token),
                    )
                    if value is None
                }
            )
        if self.queue_min_replicas > 0:
            self._check_min_replicas()

    def _check_min_replicas(self) -> None:
        """WAIT needs a RESP connection to one primary: refuse the backends without one."""
        backend = self.effective_backend
        reason = None
        if backend == "memory":
            reason = "the memory backend has no replicas: set REDKEEP_REDIS_URL"
        elif backend == "upstash":
            reason = "Upstash REST has no WAIT command: use 0 with Upstash"
        elif self.redis_cluster:
            reason = "not supported on Redis Cluster (REDKEEP_REDIS_CLUSTER): use 0"
        if reason is not None:
            raise invalid_settings(
                {"REDKEEP_QUEUE_MIN_REPLICAS": f"{reason} (got {self.queue_min_replicas})"}
            )

    # -- derived -------------------------------------------------------------------------------
    @property
    def effective_backend(self) -> Literal["memory", "redis", "upstash"]:
        """The backend after resolving ``auto``."""
        if self.backend != "auto":
            return self.backend
        if self.redis_url is not None:
            return "redis"
        if self.upstash_url and self.upstash_token is not None:
            return "upstash"
        return "memory"

    @property
    def redis_url_redacted(self) -> str | None:
        """``redis_url`` with its password replaced by ``***`` (safe to log)."""
        return redact_url(self.redis_url.get_secret_value() if self.redis_url else None)

    def redacted(self) -> dict[str, Any]:
        """Every setting as a plain dict, secrets replaced by ``***`` (for ``redkeep config``)."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "redis_url":
                value = self.redis_url_redacted
            elif isinstance(value, SecretStr):
                value = "***"
            elif name.endswith("_url") and isinstance(value, str):
                value = redact_url(value)  # e.g. an Upstash URL with user-info
            out[name] = value
        return out
