"""Cross-process stampede lock for ``get_or_set`` on Redis.

The lock is ``SET lock_key token NX PX lock_ms`` with a random token; it is released by the
compare-and-delete script ``lock_release.lua`` so a process never deletes a lock it no longer owns
(after its lease ran out and another process took it). Losers poll the cache for the winner's
value with capped exponential backoff, and compute it themselves when the lock disappears
without a value (the winner's factory failed) or ``lock_timeout`` passes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redkeep.cache.base import MISSING, Factory, call_factory
from redkeep.errors import BackendError
from redkeep.redis.base import RedisClient, Script

if TYPE_CHECKING:
    from redkeep.cache.base import CacheService

__all__ = ["RELEASE_SCRIPT", "fill_with_lock"]

log = logging.getLogger("redkeep.cache")

RELEASE_SCRIPT = Script.from_file(Path(__file__).with_name("lock_release.lua"))

_POLL_FIRST = 0.005
_POLL_MAX = 0.2


async def fill_with_lock(
    client: RedisClient,
    lock_key: str,
    lock_timeout: float,
    store: CacheService,
    key: str,
    factory: Factory,
    ttl: float | None,
) -> Any:
    """Compute ``key`` once across processes: take the lock, or wait for the holder's value.

    ``store`` is the cache read and written (a RedisCache or a FallbackCache over it). If Redis
    fails while locking, the value is computed without the lock.
    """
    lock_ms = max(1, int(lock_timeout * 1000))
    deadline = time.monotonic() + lock_timeout
    delay = _POLL_FIRST
    while True:
        token = secrets.token_hex(16)
        try:
            acquired = await client.set(lock_key, token, px=lock_ms, nx=True)
        except BackendError as exc:
            log.debug("stampede lock unavailable (%s); computing without it", type(exc).__name__)
            return await _compute(store, key, factory, ttl)
        if acquired:
            try:
                # Another process may have filled the key between our miss and the lock.
                value = await store.get(key, MISSING)
                if value is not MISSING:
                    return value
                return await _compute(store, key, factory, ttl)
            finally:
                try:
                    await client.evalsha(RELEASE_SCRIPT, [lock_key], [token])
                except BackendError as exc:  # the lock expires by itself
                    log.debug("stampede lock release failed: %s", type(exc).__name__)
        # Someone else holds the lock: wait for its value.
        while True:
            if time.monotonic() >= deadline:
                return await _compute(store, key, factory, ttl)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)
            value = await store.get(key, MISSING)
            if value is not MISSING:
                return value
            try:
                held = await client.exists(lock_key)
            except BackendError:
                return await _compute(store, key, factory, ttl)
            if not held:
                break  # holder finished without a value (its factory failed): try to lead


async def _compute(store: CacheService, key: str, factory: Factory, ttl: float | None) -> Any:
    value = await call_factory(factory)
    await store.set(key, value, ttl)
    return value
