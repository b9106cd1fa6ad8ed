"""JSON error responses for the HTTP API.

Every error body has the shape ``{"error": {"type": ..., "message": ..., "field": ...}}``.
Bad requests get a 4xx naming the problem, a backend outage a 503 with ``Retry-After``, and
anything unexpected a bare 500 without a traceback (the traceback goes to the log, scrubbed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from redkeep.errors import (
    BackendAuthError,
    BackendError,
    BackendResponseError,
    CircuitOpen,
    InvalidKey,
    InvalidName,
    JobError,
    JobNotFound,
    OutboxFull,
    PayloadTooLarge,
    QueueFull,
    RedkeepError,
    SerializationError,
    is_transient,
    scrub,
)

__all__ = [
    "ApiError",
    "ErrorBody",
    "ErrorDetail",
    "error_response",
    "exception_handlers",
    "json_response",
    "map_exception",
]

log = logging.getLogger("redkeep.web")


class ApiError(Exception):
    """An error the API reports to the client as-is."""

    def __init__(self, status: int, kind: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.field = field


class ErrorDetail(BaseModel):
    """What went wrong: a stable ``type``, a readable ``message``, the ``field`` at fault."""

    type: str = Field(description="Stable error code, e.g. validation_error, job_not_found.")
    message: str = Field(description="What was wrong, for people (never echoes secrets).")
    field: str | None = Field(None, description="The body field, path or query parameter.")


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


def _default(value: Any) -> Any:
    # Values decoded by redkeep's serializer may hold types JSON lacks (bytes, sets, Decimal...).
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def json_response(
    content: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response encoded with orjson (non-JSON types degrade to strings)."""
    body = orjson.dumps(content, default=_default, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def error_response(
    status: int,
    kind: str,
    message: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The JSON error body every failing route returns."""
    error: dict[str, Any] = {"type": kind, "message": scrub(message)}
    if field is not None:
        error["field"] = field
    return json_response({"error": error}, status, headers)


_HTTP_KINDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _message(err: Mapping[str, Any]) -> str:
    return str(err.get("msg", "invalid value")).removeprefix("Value error, ")


def _validation(exc: RequestValidationError) -> Response:
    """A request that does not fit the route's declared parameters or body model."""
    err = exc.errors()[0] if exc.errors() else {}
    loc = [str(part) for part in err.get("loc", ("body",))]
    where, rest = loc[0], loc[1:]
    if where == "body":
        if err.get("type") == "json_invalid":
            return error_response(400, "invalid_json", "request body is not valid JSON")
        if not rest:  # missing, or not an object
            return error_response(400, "invalid_json", "request body must be a JSON object")
        field = ".".join(rest)
        return error_response(422, "validation_error", f"{field}: {_message(err)}", field=field)
    name = rest[0] if rest else where
    if where == "path" and name == "job_id":
        return error_response(404, "job_not_found", "no job with that id", field=name)
    if where == "path":
        return error_response(400, "invalid_name", _message(err), field=name)
    return error_response(400, f"invalid_{where}", f"{name}: {_message(err)}", field=name)


def _is_outage(exc: BackendResponseError) -> bool:
    """Errors meaning the backend cannot serve right now (full, loading, failing over)."""
    return is_transient(exc) or str(exc).startswith(("OOM", "READONLY", "MISCONF", "NOREPLICAS"))


def _map(exc: Exception) -> Response:
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.kind, exc.message, field=exc.field)
    if isinstance(exc, RequestValidationError):
        return _validation(exc)
    if isinstance(exc, HTTPException):
        kind = _HTTP_KINDS.get(exc.status_code, "http_error")
        return error_response(exc.status_code, kind, str(exc.detail), headers=exc.headers)
    if isinstance(exc, InvalidName):
        return error_response(400, "invalid_name", str(exc))
    if isinstance(exc, QueueFull):
        return error_response(503, "queue_full", str(exc), headers={"Retry-After": "1"})
    if isinstance(exc, JobNotFound):
        return error_response(404, "job_not_found", str(exc))
    if isinstance(exc, PayloadTooLarge):
        return error_response(413, "payload_too_large", str(exc))
    if isinstance(exc, SerializationError):
        return error_response(422, "serialization_error", str(exc))
    if isinstance(exc, InvalidKey):
        return error_response(400, "invalid_key", str(exc), field="key")
    if isinstance(exc, OutboxFull):
        return error_response(503, "outbox_full", str(exc), headers={"Retry-After": "5"})
    if isinstance(exc, CircuitOpen):
        retry = str(max(1, round(exc.retry_after)))
        return error_response(503, "backend_unavailable", str(exc), headers={"Retry-After": retry})
    if isinstance(exc, BackendAuthError):
        log.error("backend refused authentication: %s", scrub(str(exc)))
        return error_response(503, "backend_unavailable", "backend refused authentication")
    if isinstance(exc, BackendResponseError) and not _is_outage(exc):
        # The server refused a command (a script or data bug, not an outage): log it, answer a
        # plain 500 without the server's message.
        log.error("backend rejected a command: %s", scrub(str(exc)))
        return error_response(500, "internal_error", "the backend rejected a command")
    if isinstance(exc, BackendError):
        return error_response(
            503, "backend_unavailable", f"backend error: {exc}", headers={"Retry-After": "1"}
        )
    if isinstance(exc, ValueError | TypeError):  # incl. invalid enqueue arguments
        return error_response(400, "invalid_request", str(exc))
    if isinstance(exc, JobError):
        return error_response(409, "job_conflict", str(exc))
    if isinstance(exc, RedkeepError):
        return error_response(400, "invalid_request", str(exc))
    log.error("unhandled error in HTTP handler: %s: %s", type(exc).__name__, scrub(str(exc)))
    return error_response(500, "internal_error", "internal server error")


async def _handle(request: Request, exc: Exception) -> Response:
    return _map(exc)


#: ``exception_handlers`` of the app: routing errors (404, 405) and anything a route lets out.
exception_handlers: dict[Any, Any] = {
    Exception: _handle,
    HTTPException: _handle,
    RequestValidationError: _handle,
}


def map_exception(exc: Exception) -> Response:
    """The response for ``exc`` (used by routes that catch errors themselves)."""
    return _map(exc)
