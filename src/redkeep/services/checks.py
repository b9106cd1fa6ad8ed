"""Startup checks of :class:`~redkeep.services.Services`: the backend answers PING, takes every
Lua script, does not evict (``maxmemory-policy``), and has the replicas that
``REDKEEP_QUEUE_MIN_REPLICAS`` asks for; with ``REDKEEP_STARTUP=strict``, waiting for it first."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from redkeep.config import Settings
from redkeep.errors import RedkeepError, StartupError, scrub
from redkeep.monitoring.probes import QUEUE_DEPTH
from redkeep.queue import scripts as queue_scripts
from redkeep.redis.base import RedisClient, Script

if TYPE_CHECKING:
    from redkeep.redis.connection import ConnectionManager

__all__ = ["SAFE_EVICTION_POLICIES", "StartupChecks"]

log = logging.getLogger("redkeep.services")

#: ``maxmemory-policy`` values under which Redis never evicts a queue's keys.
SAFE_EVICTION_POLICIES = frozenset({"noeviction"})


def _scripts() -> list[Script]:
    found: list[Script] = [QUEUE_DEPTH]
    for name in getattr(queue_scripts, "__all__", ()):
        script = getattr(queue_scripts, name, None)
        if isinstance(script, Script):
            found.append(script)
    return found


class StartupChecks:
    """Mixin for :class:`~redkeep.services.Services`."""

    settings: Settings
    client: RedisClient | None
    eviction_policy: str | None

    if TYPE_CHECKING:  # provided by Services

        def _where(self) -> str: ...
        def _warn(self, message: str) -> None: ...

    async def _wait_reachable(self, connection: ConnectionManager) -> None:
        """Strict startup: PING with backoff for up to ``connect_max_wait`` seconds (not
        retried: errors that waiting cannot fix, such as a wrong password)."""
        wait = self.settings.connect_max_wait
        log.info("strict startup: connecting to %s (waiting up to %g s)", self._where(), wait)
        start = time.monotonic()
        if await connection.start() != "ready":
            raise StartupError(
                f"strict startup: {self._where()} is unreachable ({connection.last_error}); gave "
                f"up after {connection.attempts} attempts in {time.monotonic() - start:.1f} s "
                f"(REDKEEP_CONNECT_MAX_WAIT={wait:g})"
            )

    async def _validate(self) -> str | None:
        """PING, load every script and check ``maxmemory-policy``; the problem, or None."""
        assert self.client is not None
        where = self._where()
        try:
            await self.client.ping()
        except RedkeepError as exc:
            return f"{where} is unreachable ({type(exc).__name__}: {scrub(str(exc))})"
        try:
            for script in _scripts():
                await self.client.script_load(script)
        except RedkeepError as exc:
            return f"loading Lua scripts on {where} failed ({scrub(str(exc))})"
        return await self._check_eviction() or await self._check_replicas()

    async def _check_eviction(self) -> str | None:
        assert self.client is not None
        try:
            info = await self.client.info("memory")
        except RedkeepError as exc:  # Upstash REST or restricted ACLs may refuse INFO
            self._warn(
                f"cannot read maxmemory-policy ({type(exc).__name__}); make sure it is noeviction"
            )
            return None
        policy = info.get("maxmemory_policy")
        self.eviction_policy = str(policy) if policy is not None else None
        if policy is None or policy in SAFE_EVICTION_POLICIES:
            return None
        message = (
            f"{self._where()} has maxmemory-policy {policy!r}: Redis may evict queued jobs "
            "silently; set maxmemory-policy noeviction"
        )
        if self.settings.startup == "strict":
            return message
        self._warn(message)
        return None

    async def _check_replicas(self) -> str | None:
        """With ``queue_min_replicas``, the primary must have that many replicas connected:
        every enqueue would time out otherwise."""
        assert self.client is not None
        need = self.settings.queue_min_replicas
        if not need:
            return None
        try:
            have = int((await self.client.info("replication")).get("connected_slaves", 0))
        except RedkeepError as exc:
            self._warn(f"cannot count the replicas ({type(exc).__name__}) for "
                       f"REDKEEP_QUEUE_MIN_REPLICAS={need}")  # fmt: skip
            return None
        if have >= need:
            return None
        message = (
            f"{self._where()} has {have} connected replica(s), fewer than "
            f"REDKEEP_QUEUE_MIN_REPLICAS={need}: enqueues and worker steps fail with "
            "ReplicationTimeout until enough replicas are connected"
        )
        if self.settings.startup == "strict":
            return message
        self._warn(message)
        return None
