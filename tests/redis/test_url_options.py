"""Every URL option is honoured by both RESP transports, or refused at startup by name.

Each option is checked by its effect on a private redis-server (what the server sees, what the
process's sockets carry), on the fast path (MuxClient) and the reference (RedisPyClient) alike.
The table in docs/configuration.md lists the same options (tests/test_docs.py keeps it so).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.support.redis_server import RedisServer
from tests.support.tls import HAVE_OPENSSL, make_cert

from redkeep.config import Settings
from redkeep.errors import BackendTimeout, BackendUnavailable, ConfigError
from redkeep.redis.factory import choose_transport, create_client
from redkeep.redis.mux import MuxClient
from redkeep.redis.redispy import RedisPyClient
from redkeep.redis.urls import REFUSED_OPTIONS, URL_OPTIONS, parse_url

Factory = Callable[..., RedisServer]
TRANSPORTS = [MuxClient, RedisPyClient]


@pytest.fixture
async def opened() -> AsyncIterator[Callable[..., Any]]:
    clients: list[Any] = []

    def open_(cls: type, url: str, **options: Any) -> Any:
        client = cls(url, **options)
        clients.append(client)
        return client

    yield open_
    for client in clients:
        await client.close()


def _client_info(server: RedisServer, name: str) -> list[dict[str, str]]:
    rows = []
    for line in server.cli("CLIENT", "LIST").splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if fields.get("name") == name:
            rows.append(fields)
    return rows


def _keepalive_sockets(port: int) -> list[bool]:
    """SO_KEEPALIVE of every socket of this process connected to ``port``."""
    found = []
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.getpeername()[1] == port:
                found.append(bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)))
        except OSError:
            pass
        finally:
            sock.close()
    return found


def _pings(server: RedisServer) -> int:
    for line in server.cli("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_ping:"):
            return int(line.split("calls=", 1)[1].split(",", 1)[0])
    return 0


@pytest.mark.parametrize("cls", TRANSPORTS)
async def test_db_user_password_client_name_and_protocol(
    cls: type, opened: Any, redis_server_factory: Factory
) -> None:
    server = redis_server_factory(acl_user=("app", "pa/ss?#word"))
    base = f"redis://127.0.0.1:{server.port}"
    client = opened(
        cls, f"{base}/5?username=app&password=pa%2Fss%3F%23word&client_name=rk-opt&protocol=3"
    )
    await client.set("k", "in-5")
    assert server.cli("-n", "5", "GET", "k").strip() == "in-5"
    assert await client.hgetall("nohash") == {}
    rows = _client_info(server, "rk-opt")
    assert rows and all(r["db"] == "5" and r["user"] == "app" and r["resp"] == "3" for r in rows)
    other = opened(cls, f"redis://app:pa%2Fss%3F%23word@127.0.0.1:{server.port}?db=2")
    await other.set("k", "in-2")
    assert server.cli("-n", "2", "GET", "k").strip() == "in-2"


@pytest.mark.parametrize("cls", TRANSPORTS)
async def test_unix_socket_with_password_db_and_client_name(
    cls: type, opened: Any, redis_server_factory: Factory, prefix: str
) -> None:
    """`auto` picks mux for unix://, so both transports must serve it, blocking pops included."""
    from redkeep.queue import RedisJobQueue

    server = redis_server_factory(requirepass="pa/ss-unix", start=False)
    sock = server.dir / "redis.sock"  # a short path: a socket's path has at most 107 bytes
    server.extra_args += ["--unixsocket", str(sock), "--unixsocketperm", "700"]
    server.start()
    client = opened(cls, f"unix://:pa%2Fss-unix@{sock}?db=4&client_name=rk-unix")
    await client.set("k", "in-4")
    assert server.cli("-n", "4", "GET", "k").strip() == "in-4"
    rows = _client_info(server, "rk-unix")
    assert rows and all(r["db"] == "4" and r["addr"].startswith(str(sock)) for r in rows)
    queue = RedisJobQueue(client, "unix", key_prefix=prefix)
    job = await queue.enqueue("x", {"n": 1})
    assert (await queue.get_job(job.id)).payload == {"n": 1}  # type: ignore[union-attr]
    assert await client.execute("BZPOPMIN", f"{prefix}:none", "0.05") is None


@pytest.mark.parametrize("cls", TRANSPORTS)
async def test_socket_keepalive(cls: type, opened: Any, redis_server_factory: Factory) -> None:
    server = redis_server_factory()
    plain = opened(cls, server.url)
    await plain.ping()
    assert _keepalive_sockets(server.port) == [False]
    await plain.close()
    kept = opened(cls, f"{server.url}?socket_keepalive=true")
    await kept.ping()
    assert _keepalive_sockets(server.port) == [True]


@pytest.mark.parametrize("cls", TRANSPORTS)
async def test_health_check_interval_pings_an_idle_connection_first(
    cls: type, opened: Any, redis_server_factory: Factory
) -> None:
    server = redis_server_factory()
    checked = opened(cls, f"{server.url}?health_check_interval=0.1")
    unchecked = opened(cls, server.url)
    for client in (checked, unchecked):
        await client.get("k")
    before = _pings(server)
    await asyncio.sleep(0.3)
    await unchecked.get("k")
    assert _pings(server) == before
    await checked.get("k")
    assert _pings(server) == before + 1


@pytest.mark.parametrize("cls", TRANSPORTS)
async def test_socket_timeout_wins_over_command_timeout(
    cls: type, opened: Any, redis_server_factory: Factory
) -> None:
    server = redis_server_factory()
    client = opened(cls, f"{server.url}?socket_timeout=0.3", command_timeout=10, retry_attempts=0)
    assert client.command_timeout == 0.3
    await client.ping()
    server.pause()
    try:
        start = time.monotonic()
        with pytest.raises(BackendTimeout):
            await client.get("k")
        assert time.monotonic() - start < 2
    finally:
        server.resume()


@pytest.mark.parametrize("cls", TRANSPORTS)
async def test_socket_connect_timeout_bounds_a_stalled_tls_handshake(
    cls: type, opened: Any
) -> None:
    # a loopback listener that accepts and never answers: the TLS handshake stalls
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        client = opened(
            cls,
            f"rediss://127.0.0.1:{port}/0?socket_connect_timeout=0.3&ssl_cert_reqs=none",
            connect_timeout=10,
            retry_attempts=0,
        )
        start = time.monotonic()
        with pytest.raises((BackendTimeout, BackendUnavailable)):
            await client.ping()
        assert time.monotonic() - start < 2
    finally:
        listener.close()


@pytest.mark.parametrize("cls", TRANSPORTS)
async def test_max_connections_bounds_connections_of_their_own(
    cls: type, opened: Any, redis_server_factory: Factory
) -> None:
    server = redis_server_factory()
    client = opened(cls, f"{server.url}?max_connections=3", max_connections=50)
    seen: list[int] = []

    async def pop(i: int) -> None:
        await client.execute("BLPOP", f"empty:{i}", "0.05")
        seen.append(client.pool_in_use or 0)

    await asyncio.gather(*(pop(i) for i in range(12)))
    assert max(seen) <= 3
    assert client.pool_in_use == 0


@pytest.mark.skipif(not HAVE_OPENSSL, reason="openssl CLI not installed")
@pytest.mark.parametrize("cls", TRANSPORTS)
async def test_tls_options(
    cls: type, opened: Any, redis_server_factory: Factory, tmp_path: Path
) -> None:
    cert, key, ca = make_cert(tmp_path)
    client_cert, client_key, client_ca = make_cert(tmp_path, "client")
    bundle = tmp_path / "cas.pem"
    bundle.write_text(Path(ca).read_text() + Path(client_ca).read_text())
    server = redis_server_factory(
        tls=(cert, key, str(bundle)), extra_args=["--tls-auth-clients", "optional"]
    )
    tls = f"rediss://127.0.0.1:{server.tls_port}/0"
    named = f"rediss://localhost:{server.tls_port}/0"  # the certificate names 127.0.0.1 only
    ok = [
        f"{tls}?ssl_ca_certs={ca}",
        f"{tls}?ssl_cert_reqs=none",
        f"{named}?ssl_ca_certs={ca}&ssl_check_hostname=false",
        f"{tls}?ssl_ca_certs={ca}&ssl_certfile={client_cert}&ssl_keyfile={client_key}",
    ]
    for url in ok:
        assert await opened(cls, url).set("k", "v") is True, url
    refused = [tls, f"{named}?ssl_ca_certs={ca}"]  # untrusted; wrong host name
    for url in refused:
        with pytest.raises(BackendUnavailable):
            await opened(cls, url, retry_attempts=0).ping()
    strict = redis_server_factory(tls=(cert, key, client_ca))  # clients must show a certificate
    assert strict.tls_port is not None
    base = f"rediss://127.0.0.1:{strict.tls_port}/0?ssl_ca_certs={ca}"
    assert await opened(cls, f"{base}&ssl_certfile={client_cert}&ssl_keyfile={client_key}").ping()


@pytest.mark.parametrize("cls", TRANSPORTS)
@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("nonsense=1", "nonsense"),
        ("retry_on_timeout=true", "retry_on_timeout"),
        ("decode_responses=false", "decode_responses"),
        ("protocol=4", "protocol"),
        ("socket_timeout=soon", "socket_timeout"),
        ("ssl_ca_certs=/x", "ssl_ca_certs"),  # needs rediss://
        ("sentinel_password=x", "sentinel_password"),  # needs redis+sentinel://
    ],
)
def test_bad_options_are_refused_by_name(cls: type, query: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named) as info:
        cls(f"redis://:hunter2-pw@127.0.0.1:6379/0?{query}")
    assert "hunter2-pw" not in str(info.value)
    with pytest.raises(ConfigError, match=f"REDKEEP_REDIS_URL.*{named}"):
        Settings(backend="redis", redis_url=f"redis://127.0.0.1:6379/0?{query}")


def test_every_option_is_documented_once() -> None:
    names = [o.name for o in URL_OPTIONS]
    assert len(names) == len(set(names))
    assert not set(names) & set(REFUSED_OPTIONS)
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    for name in [*names, *REFUSED_OPTIONS]:
        assert f"`{name}`" in doc, name


def test_the_table_says_which_transport_honours_each_option() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    for option in URL_OPTIONS:
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{option.name}` |"))
        mux, redis_py = row.split(" | ")[-2:]
        assert redis_py == "yes |", row
        if option.name.startswith("sentinel_"):  # only on Sentinel URLs, which mux refuses
            with pytest.raises(ConfigError, match="REDKEEP_REDIS_TRANSPORT"):
                MuxClient(f"redis+sentinel://127.0.0.1:26379/svc?{option.name}=x")
            assert mux.startswith("n/a"), row
        else:
            assert mux == "yes", row


@pytest.mark.parametrize(
    "url",
    [
        "redis://:pw@[::1/0",  # no closing bracket: was read as ::1
        "redis://[::1:6379/0",  # was host '::1:6379'
        "redis://[::1]6379/0",
        "redis://[127.0.0.1]:6379/0",
        "redis://::1/0",
        "redis://my host:6379/0",  # was host 'my host'
        "redis://h%2Fx:6379/0",
        "redis+sentinel://127.0.0.1:26379,[::1:26380/svc",
    ],
)
def test_malformed_hosts_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match=r"REDKEEP_REDIS_URL.*(host|IPv6)") as info:
        parse_url(url)
    assert "pw" not in str(info.value)


def test_well_formed_hosts_parse() -> None:
    hosts = {
        "redis://[::1]:6380/0": ("::1", 6380),
        "redis://[fe80::1%25eth0]/0": ("fe80::1%25eth0", 6379),
        "redis://redis-0.redis_svc.default.svc.cluster.local.:6379": (
            "redis-0.redis_svc.default.svc.cluster.local.",
            6379,
        ),
        "redis://10.0.0.7": ("10.0.0.7", 6379),
        "redis://:pw@/0": ("localhost", 6379),  # as redis-py reads it
    }
    for url, host in hosts.items():
        assert parse_url(url).hosts == (host,), url


def test_sentinel_and_unix_urls_parse() -> None:
    t = parse_url("redis+sentinel://u:p@127.0.0.1:26379,[::1]:26380/svc/3?sentinel_password=sp")
    assert t.kind == "sentinel" and t.service == "svc" and t.db == 3
    assert t.hosts == (("127.0.0.1", 26379), ("::1", 26380))
    assert (t.username, t.password, t.sentinel_password) == ("u", "p", "sp")
    u = parse_url("unix:///run/redis.sock?db=4&client_name=x")
    assert (u.path, u.db, u.client_name) == ("/run/redis.sock", 4, "x")
    for bad in ("redis+sentinel://127.0.0.1:26379", "redis://a:1,b:2/0", "unix://", "http://x"):
        with pytest.raises(ConfigError, match="REDKEEP_REDIS_URL"):
            parse_url(bad)


@pytest.mark.parametrize(
    ("env", "transport"),
    [
        ({"redis_url": "redis://127.0.0.1:6379/0"}, "mux"),
        ({"redis_url": "rediss://127.0.0.1:6379/0"}, "mux"),
        ({"redis_url": "unix:///tmp/r.sock"}, "mux"),
        ({"redis_url": "redis://127.0.0.1:6379/0", "redis_cluster": True}, "redis-py"),
        ({"redis_url": "redis+sentinel://127.0.0.1:26379/s"}, "redis-py"),
        ({"redis_url": "redis://127.0.0.1:6379/0", "redis_transport": "redis-py"}, "redis-py"),
    ],
)
def test_auto_takes_the_fast_path_only_for_standalone(env: dict[str, Any], transport: str) -> None:
    assert choose_transport(Settings(backend="redis", **env))[0] == transport


def test_mux_refuses_cluster_and_sentinel_by_setting_name() -> None:
    for env in (
        {"redis_url": "redis://127.0.0.1:6379/0", "redis_cluster": True},
        {"redis_url": "redis+sentinel://127.0.0.1:26379/s"},
    ):
        settings = Settings(backend="redis", redis_transport="mux", **env)
        with pytest.raises(ConfigError, match="REDKEEP_REDIS_TRANSPORT"):
            create_client(settings)


def test_unknown_transport_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="REDKEEP_REDIS_TRANSPORT"):
        Settings(backend="redis", redis_url="redis://127.0.0.1:6379/0", redis_transport="fast")
