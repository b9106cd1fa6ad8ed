"""Upstash REST transport: Redis commands as JSON over HTTPS, with httpx.

Protocol (Upstash's documented REST API): ``POST /`` with the command as a JSON array
(``["SET", "k", "v"]``) answers ``{"result": ...}`` or ``{"error": "..."}``; ``POST /pipeline``
takes an array of commands and answers one such object per command; ``POST /multi-exec`` runs
them as a transaction. Authentication is ``Authorization: Bearer <token>``.

Why not the ``upstash-redis`` SDK: its async client sends requests with no timeout (httpx
``timeout=None``) and retries on a fixed 3 s interval, so one stuck request can hang a worker and
a brief outage costs seconds. Here every request has ``command_timeout``; only failures where
the command cannot have run (connect errors, HTTP 429 and 503) are retried, with the shared
exponential full-jitter :class:`~redkeep.resilience.RetryPolicy` delays.

Values travel as JSON strings (UTF-8), so any ``str`` including non-ASCII text round-trips; the
``Upstash-Encoding: base64`` header is not used (it would only matter for binary values, which
redkeep never stores, and local emulators do not implement it).

Capabilities: no blocking commands and no pub/sub over REST. :meth:`bzpopmin` therefore raises
:class:`~redkeep.errors.BackendResponseError`; the queue polls instead (``capabilities.blocking``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from redkeep.errors import (
    BackendAuthError,
    BackendResponseError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    register_secret,
    scrub,
)
from redkeep.redis.base import Capabilities, Command, CommandObserver, Script
from redkeep.redis.commands import Commands, settings_options
from redkeep.redis.errors import response_error, translate_error
from redkeep.resilience import RetryPolicy

if TYPE_CHECKING:
    from redkeep.config import Settings

__all__ = ["UpstashRestClient"]

_EMULATOR_PREFIXES = ("Failed to execute Redis command: ", "Failed to execute pipeline: ")
_HEADERS_JSON = {"Content-Type": "application/json"}
# Answers that mean the command did not run, so sending it again is safe.
_RETRY_STATUS = frozenset({429, 503})


def _error_text(message: str) -> str:
    for prefix in _EMULATOR_PREFIXES:
        message = message.removeprefix(prefix)
    return message


def _arg(value: Any) -> Any:
    return value if isinstance(value, str) else str(value)


class UpstashRestClient(Commands):
    """:class:`~redkeep.redis.base.RedisClient` over Upstash's REST API."""

    transport = "upstash"
    capabilities = Capabilities(blocking=False, pubsub=False, cluster=False, transactions=True)

    def __init__(
        self,
        url: str,
        token: str,
        *,
        connect_timeout: float = 5.0,
        command_timeout: float = 2.0,
        max_connections: int = 50,
        retry_attempts: int = 3,
        retry_base_delay: float = 0.05,
        retry_max_delay: float = 2.0,
        observer: CommandObserver | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError("Upstash URL must start with https:// (or http:// for an emulator)")
        if not token:
            raise ConfigError("Upstash token must not be empty")
        register_secret(token)
        self.url = url.rstrip("/")
        self.command_timeout = command_timeout
        self._observer = observer
        self._retry = RetryPolicy(retry_attempts, retry_base_delay, retry_max_delay)
        self._http: httpx.AsyncClient | None = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", **_HEADERS_JSON},
            timeout=httpx.Timeout(command_timeout, connect=connect_timeout),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, observer: CommandObserver | None = None
    ) -> UpstashRestClient:
        """Build a client from ``upstash_url`` / ``upstash_token`` and the timeout settings."""
        if not settings.upstash_url or settings.upstash_token is None:
            raise ConfigError("REDKEEP_UPSTASH_URL and REDKEEP_UPSTASH_TOKEN are required")
        return cls(
            settings.upstash_url,
            settings.upstash_token.get_secret_value(),
            **settings_options(settings),
            observer=observer,
        )

    # -- plumbing ------------------------------------------------------------------------------
    async def _post(self, path: str, body: Any) -> Any:
        """POST JSON; retries only failures where the command cannot have run."""
        http = self._http
        if http is None:
            raise BackendUnavailable("upstash client is closed")
        content = orjson.dumps(body)
        delays = self._retry.delays()
        while True:
            try:
                response = await http.post(path, content=content)
                if response.status_code not in _RETRY_STATUS:
                    break
                failure: Exception = BackendUnavailable(
                    f"upstash answered HTTP {response.status_code} (request not executed)"
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure = exc
            delay = next(delays, None)
            if delay is None:
                raise translate_error(failure) from None
            await asyncio.sleep(delay)
        status = response.status_code
        if status in (401, 403):
            raise BackendAuthError(f"upstash rejected the token (HTTP {status})")
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            data = None
        if status >= 400 or data is None:
            if isinstance(data, dict) and "error" in data:
                raise response_error(_error_text(str(data["error"])))
            text = scrub(response.text[:200])
            if status == 504:
                raise BackendTimeout(f"upstash answered HTTP 504: {text}")
            if status >= 500:
                raise BackendUnavailable(f"upstash answered HTTP {status}: {text}")
            raise BackendResponseError(f"ERR upstash answered HTTP {status}: {text}")
        return data

    async def _send(self, args: Sequence[Any]) -> Any:
        data = await self._post("/", [_arg(a) for a in args])
        if "error" in data:
            raise response_error(_error_text(str(data["error"])))
        return data.get("result")

    async def _cmd(self, *args: Any) -> Any:
        return await self._observed(str(args[0]), self._send(args))

    # -- sorted sets ---------------------------------------------------------------------------
    async def bzpopmin(
        self,
        keys: Sequence[str],
        timeout: float,  # noqa: ASYNC109 - server-side wait, not a client timeout
    ) -> tuple[str, str, float] | None:
        """Not available over REST: raises BackendResponseError (see ``capabilities.blocking``)."""
        raise BackendResponseError(
            "ERR blocking commands (BZPOPMIN) are not available over Upstash REST; "
            "check capabilities.blocking and poll with ZPOPMIN or a script instead"
        )

    # -- scripts, batches, raw -----------------------------------------------------------------
    async def _wait_for_replicas(
        self, script: Script, call: tuple[Any, ...], replicas: int, wait: float
    ) -> Any:
        """Refused: a REST request has no connection of its own to run WAIT on."""
        raise BackendResponseError(
            "ERR writes acknowledged by replicas (WAIT) are not available over Upstash REST"
        )

    async def script_load(self, script: Script) -> str:
        """SCRIPT LOAD; the SHA."""
        return str(await self._cmd("SCRIPT", "LOAD", script.source))

    async def pipeline(
        self, commands: Sequence[Command], *, transaction: bool = False
    ) -> list[Any]:
        """POST /pipeline (or /multi-exec); failing commands yield their error in place."""
        if not commands:
            return []
        body = [[_arg(a) for a in command] for command in commands]
        path = "/multi-exec" if transaction else "/pipeline"
        data = await self._observed("PIPELINE", self._post(path, body))
        if not isinstance(data, list) or len(data) != len(commands):
            raise BackendResponseError("ERR upstash pipeline reply does not match the commands")
        return [
            response_error(_error_text(str(item["error"]))) if "error" in item else item["result"]
            for item in data
        ]

    # -- server --------------------------------------------------------------------------------
    async def close(self) -> None:
        """Close the HTTP connection pool; later calls raise BackendUnavailable."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    def __repr__(self) -> str:
        return f"UpstashRestClient(url={self.url!r})"
