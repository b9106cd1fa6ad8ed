"""Parse the SOURCE and TARGET arguments of ``redkeep migrate``.

Accepted forms (the first match wins):

==========================================  =================================================
``redis://[user:pw@]host:port/db``          a Redis server over RESP (``rediss://`` for TLS,
                                            ``unix:///path.sock`` for a socket)
``redis+cluster://...``                     a Redis Cluster (``rediss+cluster://`` for TLS)
``upstash://[TOKEN@]host``                  Upstash over its REST API (https)
``upstash+http://[TOKEN@]host:port``        an Upstash-compatible REST server over plain http
``http://host:port``, ``https://host``      a running redkeep service (``GET /v1/export``);
                                            source only
``settings``                                the backend configured by ``REDKEEP_*`` variables
anything else (``file:`` optional)          a snapshot file (JSON Lines)
==========================================  =================================================

A token (Upstash REST token, service API token) can come from the URL's user-info or, better,
from ``--from-token`` / ``--to-token`` (environment ``REDKEEP_MIGRATE_FROM_TOKEN`` /
``REDKEEP_MIGRATE_TO_TOKEN``), which keeps it out of the process list. Every secret is
registered with :func:`redkeep.errors.register_secret`, so it never appears in output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from redkeep.config import Settings, redact_url
from redkeep.errors import ConfigError, register_secret

__all__ = ["Endpoint", "parse_endpoint"]

Kind = Literal["redis", "upstash", "service", "snapshot", "settings"]


@dataclass(frozen=True)
class Endpoint:
    """A parsed migration endpoint. ``url`` keeps credentials; :attr:`display` hides them."""

    kind: Kind
    url: str = ""
    cluster: bool = False
    token: str | None = None
    path: Path | None = None
    key_prefix: str = "redkeep"

    @property
    def display(self) -> str:
        """A description safe to print (no password, no token)."""
        if self.kind == "snapshot":
            return f"snapshot {self.path}"
        if self.kind == "settings":
            return f"configured backend (prefix {self.key_prefix!r})"
        label = {"redis": "redis", "upstash": "upstash", "service": "service"}[self.kind]
        if self.cluster:
            label = "redis cluster"
        return f"{label} {redact_url(self.url)} (prefix {self.key_prefix!r})"


def _strip_userinfo(url: str) -> tuple[str, str | None]:
    """``url`` without user-info, and the token found there (password or user name)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    token = unquote(parts.password or parts.username or "") or None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), token


def _check_prefix(prefix: str, option: str) -> str:
    if not prefix or any(c in prefix for c in "{}*? \t\n"):
        raise ConfigError(
            f"{option}: invalid key prefix {prefix!r} (non-empty, no braces, globs or spaces)",
            {option: "invalid key prefix"},
        )
    return prefix


def parse_endpoint(
    text: str,
    *,
    token: str | None = None,
    key_prefix: str | None = None,
    option: str = "--from",
    settings: Settings | None = None,
) -> Endpoint:
    """Parse one SOURCE/TARGET argument; raises :class:`ConfigError` naming ``option``."""
    text = text.strip()
    if not text:
        raise ConfigError(f"{option}: empty endpoint", {option: "empty"})
    register_secret(token)
    default_prefix = settings.key_prefix if settings is not None else "redkeep"
    prefix = _check_prefix(key_prefix or default_prefix, f"{option}-prefix")
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if text == "settings":
        return Endpoint("settings", key_prefix=prefix)
    if scheme in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
        cluster = scheme.endswith("+cluster")
        url = text.split("://", 1)[1]
        url = f"{scheme.removesuffix('+cluster')}://{url}"
        try:
            parts = urlsplit(url)
            _ = parts.port
        except ValueError as exc:
            raise ConfigError(
                f"{option}: {redact_url(text)} is not a valid Redis URL ({exc})",
                {option: "invalid URL"},
            ) from None
        register_secret(parts.password)
        if cluster and scheme.startswith("unix"):
            raise ConfigError(f"{option}: a cluster needs a host", {option: "invalid URL"})
        return Endpoint("redis", url=url, cluster=cluster, key_prefix=prefix)
    if scheme in ("upstash", "upstash+http", "upstash+https", "http", "https"):
        if scheme.startswith("upstash"):
            real = "http" if scheme == "upstash+http" else "https"
            kind: Kind = "upstash"
        else:
            real = scheme
            kind = "service"
        url = f"{real}://{text.split('://', 1)[1]}"
        try:
            url, found = _strip_userinfo(url)
        except ValueError as exc:
            raise ConfigError(
                f"{option}: {redact_url(text)} is not a valid URL ({exc})", {option: "invalid URL"}
            ) from None
        register_secret(found)
        tok = token or found
        if kind == "upstash" and not tok:
            raise ConfigError(
                f"{option}: Upstash needs a token ({option}-token or upstash://TOKEN@host)",
                {option: "missing token"},
            )
        return Endpoint(kind, url=url.rstrip("/"), token=tok, key_prefix=prefix)
    if scheme and scheme != "file":
        raise ConfigError(
            f"{option}: unknown scheme {scheme!r} in {redact_url(text)} (expected redis, rediss, "
            "redis+cluster, upstash, http(s) or a snapshot file path)",
            {option: "unknown scheme"},
        )
    path = Path(text.removeprefix("file://").removeprefix("file:"))
    return Endpoint("snapshot", path=path, key_prefix=prefix)
