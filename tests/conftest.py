"""Fixtures shared by every test: key prefixes, the shared Redis, private servers, clients.

- ``prefix``: a unique key prefix per test (valid as ``Settings.key_prefix``); keys containing
  its unique token are removed from the shared server after the test.
- ``redis_url``: the shared Redis (``redis://127.0.0.1:6379/0`` or ``REDKEEP_TEST_REDIS_URL``);
  when it does not answer, a private session server is started instead.
- ``resp_client``: a :class:`~redkeep.redis.mux.MuxClient` (the default transport) on
  ``redis_url``.
- ``redis_server_factory``: ``factory(**opts) -> RedisServer`` (see tests/support/redis_server.py);
  every server is stopped by PID at teardown.
- ``replicated_redis``: ``(primary, replica)``, two private servers, the replica in sync.
- ``redis_cluster`` (session): a private 3-master Redis Cluster (``.url``, ``.ports``).
- ``redis_sentinel`` (session): a private primary, replica and three sentinels (``.url``).
- ``upstash_emulator`` (session): the Upstash REST emulator (``.url``, ``.token``).
- ``any_client``: a RedisClient parametrized over every transport (tests/support/clients.py).

Test-support modules import as ``tests.support.*`` (pytest ``pythonpath = ["."]``). ``make pytest``
runs the suite in two pytest-xdist workers, one test file per worker at a time
(``--dist loadfile``): each worker has its own session fixtures (Cluster, Sentinel, emulator).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis as sync_redis

from tests.support.clients import TRANSPORTS, open_client
from tests.support.redis_server import HOST, RedisServer

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

# pytest-xdist workers (`make pytest` runs two) start with COLUMNS=80 and LINES=24 set; a rich
# console created at import would keep those 80 columns for good. Tests see what a plain pytest
# process sees.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


@pytest.fixture(autouse=True)
def secret_registry() -> Iterator[None]:
    """Secrets a test registers (``redkeep.errors.register_secret``: a URL's password, a token)
    are forgotten after it: else ``scrub`` would go on masking them, e.g. a word like "token",
    in the output of whichever test the same process runs next."""
    from redkeep import errors

    before = set(errors._secrets)
    try:
        yield
    finally:
        errors._secrets.clear()
        errors._secrets.update(before)


# -- shared server ---------------------------------------------------------------------------


def _answers(url: str) -> bool:
    try:
        with sync_redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2) as r:
            return bool(r.ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of the shared Redis; a private session server when the shared one is absent."""
    url = os.environ.get("REDKEEP_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    if _answers(url):
        yield url
        return
    server = RedisServer()
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture
def prefix(request: pytest.FixtureRequest, redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test, e.g. ``rkt:3f9a0c1d2e4b``; its keys are removed after."""
    token = uuid.uuid4().hex[:12]
    yield f"rkt:{token}"
    try:
        with sync_redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=5) as r:
            batch: list[Any] = []
            for key in r.scan_iter(match=f"*{token}*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    r.unlink(*batch)
                    batch.clear()
            if batch:
                r.unlink(*batch)
    except Exception:  # cleanup is best effort; the shared server may be down on purpose
        pass


@pytest.fixture
async def resp_client(redis_url: str) -> AsyncIterator[Any]:
    """A MuxClient on the shared Redis, closed after the test."""
    from redkeep.redis.mux import MuxClient

    client = MuxClient(redis_url)
    try:
        yield client
    finally:
        await client.close()


# -- private servers -------------------------------------------------------------------------


@pytest.fixture
def redis_server_factory() -> Iterator[Callable[..., RedisServer]]:
    """``factory(**opts) -> RedisServer``; all servers are stopped (by PID) at teardown."""
    servers: list[RedisServer] = []

    def factory(**opts: Any) -> RedisServer:
        server = RedisServer(**opts)
        servers.append(server)
        return server

    try:
        yield factory
    finally:
        for server in servers:
            server.cleanup()


@pytest.fixture
def replicated_redis(
    redis_server_factory: Callable[..., RedisServer],
) -> tuple[RedisServer, RedisServer]:
    """A private primary and one replica of it, returned once the replica acknowledges writes
    (``WAIT``)."""
    primary = redis_server_factory(extra_args=["--repl-diskless-sync-delay", "0"])
    replica = redis_server_factory(extra_args=["--replicaof", HOST, str(primary.port)])
    with sync_redis.Redis(host=HOST, port=primary.port, socket_timeout=15) as r:
        deadline = time.monotonic() + 10
        while "state=online" not in primary.cli("INFO", "replication"):
            assert time.monotonic() < deadline, "the replica did not connect"
            time.sleep(0.05)
        r.set("replicated_redis:synced", "1")
        assert r.execute_command("WAIT", 1, 10_000) == 1, "the replica does not acknowledge"
    return primary, replica


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Any]:
    """A private 3-master Redis Cluster for the whole session (``.url``, ``.ports``)."""
    from tests.support.cluster import start_cluster

    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[Any]:
    """A private Sentinel set for the whole session: primary, one replica, three sentinels."""
    from tests.support.sentinel import start_sentinels

    group = start_sentinels()
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture(scope="session")
def upstash_emulator() -> Iterator[Any]:
    """The Upstash REST emulator on a private redis-server (``.url``, ``.token``) for the session.

    Skipped only when node is missing.
    """
    from tests.support.upstash import emulator_missing_reason, start_emulator

    reason = emulator_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    emulator = start_emulator()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(params=TRANSPORTS)
async def any_client(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A RedisClient over each transport in turn (see tests/support/clients.py), closed after."""
    client = open_client(request, request.param)
    try:
        yield client
    finally:
        await client.close()
