"""What stands between the HTTP service and hostile clients: browsers, slow senders, open binds.

:class:`RequestGuard` (pure ASGI, the outermost middleware) checks every request before a route
sees it:

- **Host** (DNS rebinding). A page on ``attacker.example`` whose name the attacker re-points at
  127.0.0.1 sends ``Host: attacker.example``; it gets ``400 invalid_host``. Allowed hosts: IP
  addresses (rebinding needs a name), ``localhost``, the name the service was bound to, and the
  names in ``REDKEEP_HTTP_ALLOWED_HOSTS`` (``api.example.com``, ``.example.com`` for a domain
  and its subdomains, ``*`` for any). With an API token and no configured names any host is
  accepted: a rebinding page cannot send the token.
- **Cross-site writes** (CSRF). A POST, PUT, PATCH or DELETE whose ``Origin`` is another site
  (or ``null``) gets ``403 cross_origin``; one with a body that is not
  ``Content-Type: application/json`` (forms, ``text/plain``: what browsers send cross-site
  without a CORS preflight) gets ``415 unsupported_media_type``.
- **Bodies**. A body over the size limit gets ``413`` (a ``Content-Length`` over the limit
  before anything is read); one that does not arrive completely within
  ``REDKEEP_HTTP_BODY_TIMEOUT`` seconds (a slow sender, a ``Content-Length`` that lies) gets
  ``408``. Both close the connection. Slow *headers* are the reverse proxy's job (see
  docs/deployment.md); uvicorn bounds their size.

:func:`exposure_problem` is the bind rule of ``redkeep serve`` and a worker's ``--http-host``:
a non-loopback address needs an API token of at least :data:`MIN_TOKEN_LENGTH` characters.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from redkeep.web.errors import error_response

__all__ = ["MIN_TOKEN_LENGTH", "RequestGuard", "exposure_problem", "is_loopback"]

MIN_TOKEN_LENGTH = 16
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
_CLOSE = {"Connection": "close"}
_CHECKED = frozenset({b"host", b"origin", b"content-type", b"content-length", b"transfer-encoding"})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, token: str | None, what: str = "the service") -> str | None:
    """Why ``what`` must not listen on ``host`` with ``token``; None when it may."""
    if is_loopback(host):
        return None
    if token is None:
        return (
            f"refusing to expose {what} on non-loopback address {host!r} without an API "
            "token: set REDKEEP_API_TOKEN (or listen on 127.0.0.1)"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        return (
            f"refusing to expose {what} on non-loopback address {host!r}: REDKEEP_API_TOKEN "
            f"is shorter than {MIN_TOKEN_LENGTH} characters (use a long random token, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return None


def _hostname(value: str) -> str:
    """The host part of a ``Host`` header or URL netloc, lower case, without port or dot."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    name, sep, port = value.rpartition(":")
    if sep and port.isdigit():
        value = name
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostPolicy:
    """Which ``Host`` names the service answers (see the module docs)."""

    def __init__(
        self, allowed: Iterable[str] = (), *, bind_host: str | None = None, token: bool = False
    ) -> None:
        names = {n.strip().lower().rstrip(".") for n in allowed if n.strip()}
        self.any = "*" in names or (token and not names)
        self.domains = tuple(n.lstrip("*") for n in names if n.startswith((".", "*.")))
        self.configured = {n for n in names if not n.startswith((".", "*"))}
        self.names = self.configured | {"localhost"}
        if bind_host and bind_host not in _WILDCARD_BINDS:
            self.names.add(_hostname(bind_host))

    def allows(self, host: str) -> bool:
        """True when a request with ``Host: host`` may be served."""
        if self.any:
            return True
        name = _hostname(host)
        return name in self.names or _is_ip(name) or self._in_domains(name)

    def allows_origin(self, name: str) -> bool:
        """True when pages from host ``name`` (another origin) may change state: only names
        configured in ``REDKEEP_HTTP_ALLOWED_HOSTS`` (e.g. the public name behind a proxy)."""
        return name in self.configured or self._in_domains(name)

    def _in_domains(self, name: str) -> bool:
        return any(name.endswith(d) or name == d[1:] for d in self.domains)


class RequestGuard:
    """Host, cross-site, content-type and body checks in front of every route."""

    def __init__(
        self, app: ASGIApp, policy: HostPolicy, *, max_body: int, body_timeout: float
    ) -> None:
        self.app = app
        self.policy = policy
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k: v for k, v in scope.get("headers", ()) if k in _CHECKED}
        problem = self._problem(scope, headers)
        if problem is not None:
            status, kind, message = problem
            extra = _CLOSE if status == 413 else None
            await error_response(status, kind, message, headers=extra)(scope, receive, send)
            return
        await self.app(scope, self._bounded(receive), send)

    def _problem(self, scope: Scope, headers: dict[bytes, bytes]) -> tuple[int, str, str] | None:
        host = headers.get(b"host")
        if host is not None and not self.policy.allows(host.decode("latin-1")):
            return (
                400,
                "invalid_host",
                "this service does not answer that Host name: add it to "
                "REDKEEP_HTTP_ALLOWED_HOSTS if it is yours",
            )
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body:
            return 413, "payload_too_large", f"request body is over {self.max_body} bytes"
        if scope.get("method") not in UNSAFE_METHODS:
            return None
        origin = headers.get(b"origin")
        if origin is not None and not self._same_origin(origin.decode("latin-1"), host):
            return 403, "cross_origin", "cross-site requests cannot change state"
        media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        has_body = (length.isdigit() and int(length) > 0) or b"transfer-encoding" in headers
        if (media or has_body) and not (media == b"application/json" or media.endswith(b"+json")):
            return (
                415,
                "unsupported_media_type",
                "requests that change state must send Content-Type: application/json",
            )
        return None

    def _same_origin(self, origin: str, host: bytes | None) -> bool:
        try:
            netloc = urlsplit(origin).netloc.lower()
        except ValueError:
            return False
        if not netloc:  # "null": sandboxed frames, file:// pages
            return False
        if host is not None and netloc == host.decode("latin-1").strip().lower():
            return True
        return self.policy.allows_origin(_hostname(netloc))

    def _bounded(self, receive: Receive) -> Receive:
        """``receive`` with the body size limit and the deadline for the whole body."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        size = 0
        done = False

        async def bounded() -> Message:
            nonlocal size, done
            if done:  # after the body: the app waits for a disconnect, without deadline
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408,
                    f"the request body did not arrive within {self.body_timeout:g}s",
                    headers=_CLOSE,
                ) from None
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.max_body:
                    raise HTTPException(
                        413, f"request body is over {self.max_body} bytes", headers=_CLOSE
                    )
                done = not message.get("more_body", False)
            else:
                done = True
            return message

        return bounded
