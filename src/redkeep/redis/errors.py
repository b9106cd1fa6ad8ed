"""Translation of redis-py and httpx exceptions into :mod:`redkeep.errors`, shared by transports.

Mapping: connection refused / reset / DNS / closed pool -> :class:`BackendUnavailable`;
timeouts -> :class:`BackendTimeout`; AUTH failures, NOAUTH, WRONGPASS, NOPERM ->
:class:`BackendAuthError`; any other server error reply -> :class:`BackendResponseError` carrying
the server's message with its error code (``WRONGTYPE ...``, ``OOM ...``). Every message passes
through :func:`redkeep.errors.scrub`.
"""

from __future__ import annotations

import asyncio

import httpx
from redis import exceptions as rx

from redkeep.errors import (
    BackendAuthError,
    BackendError,
    BackendResponseError,
    BackendTimeout,
    BackendUnavailable,
    RedkeepError,
    scrub,
)

__all__ = ["error_category", "response_error", "translate_error"]

# redis-py strips the error code of these replies and encodes it in the exception class.
_STRIPPED_CODES: dict[type[BaseException], str] = {
    rx.OutOfMemoryError: "OOM",
    rx.ExecAbortError: "EXECABORT",
    rx.BusyLoadingError: "LOADING",
    rx.NoScriptError: "NOSCRIPT",
    rx.ReadOnlyError: "READONLY",
    rx.NoPermissionError: "NOPERM",
    rx.AskError: "ASK",
    rx.TryAgainError: "TRYAGAIN",
    rx.MovedError: "MOVED",
    rx.ClusterDownError: "CLUSTERDOWN",
    rx.ClusterCrossSlotError: "CROSSSLOT",
    rx.MasterDownError: "MASTERDOWN",
}
_AUTH_CODES = ("NOAUTH", "WRONGPASS", "NOPERM", "invalid password", "invalid username")


def _has_code(message: str) -> bool:
    word = message.split(" ", 1)[0]
    return len(word) > 1 and word.replace("_", "").isalnum() and word.isupper()


def _server_message(exc: rx.RedisError) -> str:
    """The reply as the server sent it: redis-py drops the leading error code of known errors."""
    message = str(exc)
    code = getattr(exc, "status_code", None) or _STRIPPED_CODES.get(type(exc))
    if code is None:
        if _has_code(message):
            return message
        code = "ERR"
    return message if message.startswith(code) else f"{code} {message}"


def response_error(message: str) -> BackendError:
    """The typed error for a server error reply given as text (used by the REST transport)."""
    text = scrub(message)
    if text.startswith(_AUTH_CODES):
        return BackendAuthError(text)
    if text.startswith("LOADING"):
        return BackendUnavailable(text)
    return BackendResponseError(text)


def translate_error(exc: BaseException) -> BaseException:
    """Map ``exc`` into the redkeep exception tree (already-translated errors pass through).

    Non-backend exceptions (``CancelledError``, ``KeyboardInterrupt``, programming errors such
    as ``TypeError``) are returned unchanged so that they propagate as they are.
    """
    if isinstance(exc, RedkeepError):
        return exc
    if isinstance(exc, rx.RedisError):
        if isinstance(exc, rx.AuthenticationError | rx.AuthenticationWrongNumberOfArgsError):
            return BackendAuthError(scrub(f"authentication failed: {exc}"))
        if isinstance(exc, rx.NoPermissionError):
            return BackendAuthError(scrub(_server_message(exc)))
        if isinstance(exc, rx.TimeoutError):
            return BackendTimeout(scrub(f"redis timed out: {exc}"))
        if isinstance(exc, rx.BusyLoadingError):  # up but still loading its AOF/RDB: not usable
            return BackendUnavailable(scrub(_server_message(exc)))
        if isinstance(exc, rx.ResponseError):
            return response_error(_server_message(exc))
        if isinstance(exc, rx.ConnectionError):
            if "No connection available" in str(exc):  # BlockingConnectionPool wait expired
                return BackendTimeout("redis connection pool exhausted: no connection became free")
            return BackendUnavailable(scrub(f"redis unavailable: {exc}"))
        if isinstance(exc, rx.DataError):
            return BackendResponseError(scrub(f"ERR invalid command argument: {exc}"))
        if type(exc) is rx.RedisError:  # client-side refusal, e.g. unknown command on a Cluster
            return BackendResponseError(scrub(f"ERR {exc}"))
        return BackendError(scrub(f"redis error: {type(exc).__name__}: {exc}"))
    if isinstance(exc, rx.RedisClusterException):  # not a RedisError subclass
        text = " ".join(str(exc).split())
        if any(word in text for word in ("connect", "reachable", "No targets", "not covered")):
            return BackendUnavailable(scrub(f"redis cluster unavailable: {text}"))
        # e.g. multi-key command whose keys map to different slots (client-side check)
        return BackendResponseError(scrub(f"CROSSSLOT {text}" if "slot" in text else text))
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | httpx.TimeoutException):
        return BackendTimeout(scrub(f"backend timed out: {type(exc).__name__} {exc}".rstrip()))
    if isinstance(exc, httpx.TransportError):
        return BackendUnavailable(scrub(f"backend unavailable: {type(exc).__name__}: {exc}"))
    if isinstance(exc, ConnectionError | OSError | EOFError):
        return BackendUnavailable(scrub(f"backend unavailable: {type(exc).__name__}: {exc}"))
    return exc


def error_category(exc: BaseException) -> str:
    """Short category name of an error, used as a metrics label (``BackendTimeout``...)."""
    return type(translate_error(exc)).__name__
