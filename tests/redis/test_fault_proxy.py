"""The fault-injection proxy itself (tests/support/proxy.py), with a plain redis-py client."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis as sync_redis
from tests.support.proxy import FaultProxy, frame_end
from tests.support.redis_server import RedisServer

Factory = Callable[..., RedisServer]


def _client(url: str) -> sync_redis.Redis:
    # no retries: the test must see each fault the proxy injects
    return sync_redis.Redis.from_url(
        url, socket_timeout=5, retry=sync_redis.retry.Retry(sync_redis.backoff.NoBackoff(), 0)
    )


@pytest.mark.parametrize(
    ("data", "end"),
    [
        (b"+OK\r\n", 5),
        (b"$3\r\nabc\r\n", 9),
        (b"$3\r\nab", None),
        (b"$-1\r\n", 5),
        (b"*2\r\n$1\r\na\r\n:5\r\n", 15),
        (b"*2\r\n$1\r\na\r\n", None),
        (b"%1\r\n+k\r\n+v\r\n", 12),
        (b"PING\r\n", 6),
    ],
)
def test_frame_end_finds_complete_frames(data: bytes, end: int | None) -> None:
    assert frame_end(data + b"+next\r\n" if end else data) == end


def test_relays_commands_pipelines_and_large_values(redis_server_factory: Factory) -> None:
    server = redis_server_factory()
    with FaultProxy(server.port) as proxy, _client(proxy.url()) as r:
        big = b"x" * (3 * 1024 * 1024)
        assert r.set("big", big)
        assert r.get("big") == big
        pipe = r.pipeline(transaction=False)
        for _ in range(500):
            pipe.incr("n")
        assert pipe.execute()[-1] == 500
        assert proxy.dropped == []
        assert proxy.commands >= 503


def test_lost_reply_means_the_server_ran_the_command(redis_server_factory: Factory) -> None:
    server = redis_server_factory()
    with FaultProxy(server.port) as proxy, _client(proxy.url()) as r:
        assert r.execute_command("INCR", "n") == 1
        proxy.drop_reply(command="INCR")
        with pytest.raises(sync_redis.ConnectionError):
            r.execute_command("INCR", "n")
        assert proxy.dropped == [("INCR", True)]
        assert server.cli("GET", "n").strip() == "2"  # it ran; its reply never arrived
        assert r.execute_command("INCR", "n") == 3  # a new connection through the proxy works


def test_lost_request_never_reaches_the_server(redis_server_factory: Factory) -> None:
    server = redis_server_factory()
    with FaultProxy(server.port) as proxy, _client(proxy.url()) as r:
        assert r.ping()
        proxy.drop_reply(command="INCR", before_server=True)
        with pytest.raises(sync_redis.ConnectionError):
            r.execute_command("INCR", "n")
        assert proxy.dropped == [("INCR", False)]
        assert server.cli("EXISTS", "n").strip() == "0"


def test_random_drops_are_seeded_and_bounded(redis_server_factory: Factory) -> None:
    server = redis_server_factory()

    def run() -> list[int]:
        lost: list[int] = []
        with FaultProxy(server.port, drop_rate=0.2, drop_command="INCR", seed=7) as proxy:
            with _client(proxy.url()) as r:
                for i in range(50):
                    try:
                        r.execute_command("INCR", "n")
                    except sync_redis.ConnectionError:
                        lost.append(i)
            assert len(proxy.dropped) == len(lost)
        return lost

    first = run()
    assert 0 < len(first) < 30
    assert run() == first  # same seed, same faults
    assert server.cli("GET", "n").strip() == "100"  # every INCR ran, lost replies included


def test_cut_all_and_refusing(redis_server_factory: Factory) -> None:
    server = redis_server_factory()
    with FaultProxy(server.port) as proxy, _client(proxy.url()) as r:
        assert r.ping()
        proxy.cut_all()
        proxy.refusing = True
        with pytest.raises(sync_redis.ConnectionError):
            r.ping()
        proxy.refusing = False
        assert r.ping()
