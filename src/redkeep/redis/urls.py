"""Redis connection URLs: every option either honoured by both RESP transports or refused.

Forms::

    redis://[[user]:password@]host[:port][/db][?option=value&...]
    rediss://...                                   TLS
    unix://[[user]:password@]/path/to/redis.sock[?db=N&...]
    redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db][?...]

:func:`parse_url` turns one into a :class:`RedisTarget` and raises
:class:`~redkeep.errors.ConfigError` naming the first option it does not know or cannot parse,
so that nothing is silently ignored. :data:`URL_OPTIONS` is the table docs/configuration.md
shows (a test keeps the two in step). Values given in the URL win over the matching
``REDKEEP_*`` settings (``socket_timeout`` over ``REDKEEP_COMMAND_TIMEOUT``...).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

from redkeep.errors import ConfigError, register_secret

__all__ = [
    "REFUSED_OPTIONS",
    "UNENCODED_PASSWORD",
    "URL_OPTIONS",
    "RedisTarget",
    "UrlOption",
    "parse_url",
]

Kind = Literal["standalone", "cluster", "sentinel"]
_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
UNENCODED_PASSWORD = (
    "is not a valid URL: characters such as / # ? @ in the password must be percent-encoded "
    "(/ as %2F, # as %23, ? as %3F, @ as %40)"
)
"""Why a URL whose user-info holds / ? or # is refused (without echoing any of it)."""
_HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")  # a DNS name or an IPv4 address


@dataclass(frozen=True)
class UrlOption:
    """One query option: its name, what it does, and its value's form."""

    name: str
    form: str
    meaning: str


URL_OPTIONS: tuple[UrlOption, ...] = (
    UrlOption("db", "integer", "Database number (also the URL path `/N`; 0 on a Cluster)."),
    UrlOption("username", "text", "ACL user (also the URL's user-info)."),
    UrlOption("password", "text", "Password (also the URL's user-info); never logged."),
    UrlOption("client_name", "text", "`CLIENT SETNAME` on every connection."),
    UrlOption("protocol", "2 or 3", "RESP version (3 sends `HELLO 3`)."),
    UrlOption("socket_timeout", "seconds", "Reply timeout; overrides `REDKEEP_COMMAND_TIMEOUT`."),
    UrlOption(
        "socket_connect_timeout", "seconds", "Connect timeout; overrides `REDKEEP_CONNECT_TIMEOUT`."
    ),
    UrlOption("socket_keepalive", "true/false", "TCP keep-alive on every connection."),
    UrlOption(
        "health_check_interval",
        "seconds",
        "PING a connection idle for this long before using it again (0: never).",
    ),
    UrlOption("max_connections", "integer", "Overrides `REDKEEP_MAX_CONNECTIONS`."),
    UrlOption(
        "ssl_cert_reqs",
        "none / optional / required",
        "Server certificate check (`rediss://`; default required).",
    ),
    UrlOption("ssl_ca_certs", "path", "CA bundle that signs the server certificate."),
    UrlOption("ssl_certfile", "path", "Client certificate (mutual TLS)."),
    UrlOption("ssl_keyfile", "path", "Client certificate key (mutual TLS)."),
    UrlOption(
        "ssl_check_hostname",
        "true/false",
        "Check that the certificate names the host (default true; false when "
        "`ssl_cert_reqs=none`).",
    ),
    UrlOption("sentinel_username", "text", "ACL user for the sentinels (Sentinel URLs)."),
    UrlOption("sentinel_password", "text", "Password of the sentinels; never logged."),
)

REFUSED_OPTIONS: dict[str, str] = {
    "retry_on_timeout": "redkeep re-sends only what is safe to run twice; see REDKEEP_RETRY_*",
    "retry_on_error": "redkeep re-sends only what is safe to run twice; see REDKEEP_RETRY_*",
    "timeout": "the wait for a free connection is REDKEEP_COMMAND_TIMEOUT",
    "decode_responses": "redkeep always decodes replies as UTF-8",
    "encoding": "redkeep always decodes replies as UTF-8",
    "encoding_errors": "redkeep replaces undecodable bytes (U+FFFD)",
    "single_connection_client": "connections are managed by the transport",
    "ssl_ca_data": "give a file with ssl_ca_certs",
    "ssl_password": "not supported by every redis-py release redkeep supports",
    "ssl_ca_path": "not supported by every redis-py release redkeep supports",
    "ssl_min_version": "not supported by every redis-py release redkeep supports",
    "ssl_ciphers": "not supported by every redis-py release redkeep supports",
}
"""Options redis-py knows that redkeep refuses, with the reason given in the error."""

_KNOWN = {o.name for o in URL_OPTIONS}


@dataclass(frozen=True)
class RedisTarget:
    """A parsed connection URL (plus the cluster flag of the settings)."""

    kind: Kind
    scheme: str
    hosts: tuple[tuple[str, int], ...] = ()
    """Servers (standalone, cluster seed) or sentinels."""
    path: str | None = None
    """Unix socket path (``unix://``)."""
    service: str | None = None
    """Sentinel service (master group) name."""
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    client_name: str | None = None
    protocol: int = 2
    socket_timeout: float | None = None
    socket_connect_timeout: float | None = None
    socket_keepalive: bool = False
    health_check_interval: float = 0.0
    max_connections: int | None = None
    ssl: dict[str, Any] = field(default_factory=dict)
    """TLS options (``ssl_cert_reqs``...) when the scheme is ``rediss``; empty otherwise."""
    sentinel_username: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)

    @property
    def tls(self) -> bool:
        """True for ``rediss://``."""
        return self.scheme == "rediss"

    @property
    def host(self) -> str:
        """The first host (standalone server, cluster seed or first sentinel)."""
        return self.hosts[0][0] if self.hosts else "localhost"

    @property
    def port(self) -> int:
        return self.hosts[0][1] if self.hosts else 6379

    def with_cluster(self, cluster: bool) -> RedisTarget:
        """The same target as a Cluster seed (``REDKEEP_REDIS_CLUSTER``)."""
        if not cluster:
            return self
        if self.kind == "sentinel" or self.path is not None:
            raise ConfigError(
                "REDKEEP_REDIS_CLUSTER: a Cluster is reached with redis:// or rediss://, "
                f"not {self.scheme}://"
            )
        if self.db != 0:
            raise ConfigError("REDKEEP_REDIS_URL: a Redis Cluster has only database 0")
        return replace(self, kind="cluster")


def _fail(reason: str) -> ConfigError:
    return ConfigError(
        f"invalid Redis URL (REDKEEP_REDIS_URL): {reason}", {"REDKEEP_REDIS_URL": reason}
    )


def _number(name: str, value: str, kind: type[int] | type[float]) -> Any:
    try:
        number = kind(value)
    except ValueError:
        raise _fail(f"option {name}={value!r} is not a number") from None
    if number < 0:
        raise _fail(f"option {name} must not be negative")
    return number


def _flag(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _fail(f"option {name}={value!r} is not true or false")


def _port(text: str, default: int) -> int:
    try:
        port = int(text) if text else default
    except ValueError:
        raise _fail(f"port {text!r} is not a number") from None
    if not 0 < port < 65536:
        raise _fail(f"port {port} is out of range")
    return port


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    """``(host, port)`` of ``host[:port]`` or ``[ipv6][:port]``; a malformed host is refused
    (it must never turn into a connection to some other address)."""
    if item.startswith("["):  # [::1]:6379
        host, closed, rest = item[1:].partition("]")
        if not closed or rest[:1] not in ("", ":") or not _is_ipv6(host):
            raise _fail(f"host {item!r} is not an IPv6 address in brackets, e.g. [::1]:6379")
        return host, _port(rest[1:], default_port)
    host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
    host = unquote(host)
    if host and not _HOST_NAME.fullmatch(host):
        raise _fail(
            f"host {host!r} is not a host name or an IP address (an IPv6 address needs "
            "brackets: [::1]:6379)"
        )
    return host or "localhost", _port(port, default_port)


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(unquote(text).partition("%")[0]).version == 6
    except ValueError:
        return False


def parse_url(url: str) -> RedisTarget:
    """Parse ``url``; :class:`ConfigError` names what is wrong (never the password)."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _SCHEMES:
        raise _fail("must start with redis://, rediss://, unix:// or redis+sentinel://")
    userinfo, at, rest = rest.rpartition("@")
    if not at:
        userinfo, rest = "", userinfo + rest
    if any(c in userinfo for c in "/?#"):
        raise _fail(UNENCODED_PASSWORD)
    hostlist, _, tail = rest.partition("/")
    path_part, _, query = tail.partition("?")
    if "?" in hostlist:  # redis://host?db=1 (no path)
        hostlist, _, query = hostlist.partition("?")
    username = password = None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
        if not colon:  # redis://secret@host: redis-py takes a lone user-info as the password
            username, password = None, unquote(user)
    options: dict[str, Any] = {}
    ssl: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in REFUSED_OPTIONS:
            raise _fail(f"option {name} is not supported: {REFUSED_OPTIONS[name]}")
        if name not in _KNOWN:
            raise _fail(f"unknown option {name!r} (see docs/configuration.md)")
        if name.startswith("sentinel_") and scheme != "redis+sentinel":
            raise _fail(f"option {name} needs a redis+sentinel:// URL")
        if name.startswith("ssl_"):
            if scheme != "rediss":
                raise _fail(f"option {name} needs a rediss:// URL")
            ssl[name] = value
        else:
            options[name] = value
    password = options.pop("password", password)
    username = options.pop("username", username)
    register_secret(password)
    register_secret(options.get("sentinel_password"))
    kind: Kind = "standalone"
    path = service = None
    hosts: tuple[tuple[str, int], ...] = ()
    db_text = options.pop("db", "")
    if scheme == "unix":
        path = "/" + path_part if path_part else ""
        if not path:
            raise _fail("unix:// needs a socket path, e.g. unix:///run/redis.sock")
    elif scheme == "redis+sentinel":
        kind = "sentinel"
        hosts = tuple(_host_port(h, 26379) for h in hostlist.split(",") if h)
        service, _, db_path = path_part.partition("/")
        if not hosts or not service:
            raise _fail("redis+sentinel:// needs host:port[,host:port...]/service_name[/db]")
        db_text = db_path or db_text
    else:
        if "," in hostlist:
            raise _fail("several hosts need redis+sentinel:// (or one seed of a Cluster)")
        hosts = (_host_port(hostlist, 6379),)
        db_text = path_part or db_text
    db = _number("db", db_text, int) if db_text else 0
    if scheme == "rediss":
        reqs = ssl.get("ssl_cert_reqs", "required").lower()
        if reqs not in ("none", "optional", "required"):
            raise _fail(f"option ssl_cert_reqs={reqs!r} is not none, optional or required")
        ssl["ssl_cert_reqs"] = reqs
        check = ssl.get("ssl_check_hostname")
        ssl["ssl_check_hostname"] = (
            reqs != "none" if check is None else _flag("ssl_check_hostname", check)
        )
        if reqs == "none" and ssl["ssl_check_hostname"]:
            raise _fail("ssl_check_hostname=true needs ssl_cert_reqs optional or required")
    protocol = _number("protocol", options.get("protocol", "2"), int)
    if protocol not in (2, 3):
        raise _fail(f"option protocol={protocol} is not 2 or 3")

    def seconds(name: str) -> float | None:
        return _number(name, options[name], float) if name in options else None

    max_connections = options.get("max_connections")
    return RedisTarget(
        kind=kind,
        scheme=scheme,
        hosts=hosts,
        path=path,
        service=service,
        db=db,
        username=username,
        password=password,
        client_name=options.get("client_name") or None,
        protocol=protocol,
        socket_timeout=seconds("socket_timeout"),
        socket_connect_timeout=seconds("socket_connect_timeout"),
        socket_keepalive=_flag("socket_keepalive", options.get("socket_keepalive", "false")),
        health_check_interval=seconds("health_check_interval") or 0.0,
        max_connections=(
            _number("max_connections", max_connections, int) or None if max_connections else None
        ),
        ssl=ssl,
        sentinel_username=options.get("sentinel_username") or None,
        sentinel_password=options.get("sentinel_password") or None,
    )
