"""The private-server fixture itself: start, auth, restart with AOF, kill, pause/resume."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
import redis as sync_redis
from tests.support.redis_server import RedisServer, wait_for_ping


def _client(url: str, timeout: float = 2.0) -> sync_redis.Redis:
    return sync_redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=timeout)


def test_server_starts_on_loopback_and_stops_by_pid(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory()
    assert server.pid is not None
    with _client(server.url) as r:
        assert r.ping()
        assert r.config_get("bind")["bind"] == "127.0.0.1"
    server.stop()
    assert server.pid is None
    assert not wait_for_ping(server.port, timeout=0.3)


def test_aof_data_survives_kill_and_restart(
    redis_server_factory: Callable[..., RedisServer], prefix: str
) -> None:
    server = redis_server_factory(appendonly=True, appendfsync="always")
    with _client(server.url) as r:
        r.set(f"{prefix}:k", "v")
    port = server.port
    server.kill()
    server.start()
    assert server.port == port
    with _client(server.url) as r:
        assert r.get(f"{prefix}:k") == b"v"


def test_requirepass_and_acl_user(redis_server_factory: Callable[..., RedisServer]) -> None:
    server = redis_server_factory(acl_user=("app", "s3cret-pw"))
    with _client(server.url) as r:
        assert r.acl_whoami() == "app"
    with _client(server.url_no_auth) as r, pytest.raises(sync_redis.AuthenticationError):
        r.ping()
    with_pass = redis_server_factory(requirepass="another-pw")
    with _client(with_pass.url) as r:
        assert r.ping()


def test_pause_freezes_and_resume_unfreezes(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory()
    with _client(server.url, timeout=0.3) as r:
        r.ping()
        server.pause()
        with pytest.raises(sync_redis.TimeoutError):
            r.ping()
        server.resume()
    with _client(server.url) as r:
        assert r.ping()


def test_maxmemory_options_apply(redis_server_factory: Callable[..., RedisServer]) -> None:
    server = redis_server_factory(maxmemory="5mb", maxmemory_policy="noeviction")
    assert "noeviction" in server.cli("CONFIG", "GET", "maxmemory-policy")


def test_paused_server_is_still_stopped_at_cleanup() -> None:
    server = RedisServer()
    pid = server.pid
    server.pause()
    server.cleanup()
    assert server.pid is None
    assert pid is not None
    gone = subprocess.run(["kill", "-0", str(pid)], capture_output=True)
    assert gone.returncode != 0
