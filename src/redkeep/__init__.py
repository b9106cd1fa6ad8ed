"""redkeep: durable cache and job-queue services on Redis, with a memory fallback."""

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

__version__ = "0.1.0"

__all__ = [
    "BackendAuthError",
    "BackendError",
    "BackendResponseError",
    "BackendTimeout",
    "BackendUnavailable",
    "CircuitOpen",
    "ConfigError",
    "InvalidKey",
    "JobError",
    "JobNotFound",
    "LeaseLost",
    "PayloadTooLarge",
    "RedkeepError",
    "SerializationError",
    "Settings",
    "__version__",
    "is_transient",
]
