"""Replica-acknowledged queue writes (``REDKEEP_QUEUE_MIN_REPLICAS``): enqueues and worker steps
return only once a replica has them, a timeout names the jobs, re-sending is safe and is itself
confirmed, and the setting is refused where WAIT is not available.

Each test has a private primary and replica (``replicated_redis``); SIGSTOP on the replica
stands for a replica that lags or is cut off. The failover scenario (primary SIGKILLed after a
burst of enqueues, replica promoted by Sentinel) is tests/reliability/test_replica_failover.py.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from redkeep.config import Settings
from redkeep.errors import ConfigError, ReplicationTimeout
from redkeep.queue import JobSpec, RedisJobQueue, Worker
from redkeep.queue.protocol import Outcome, StepRequest
from redkeep.redis.mux import MuxClient
from redkeep.redis.redispy import RedisPyClient
from redkeep.redis.upstash import UpstashRestClient
from redkeep.services import Services, StartupError
from tests.support.redis_server import RedisServer
from tests.web.server import TOKEN, ServerThread, redis_settings

Pair = tuple[RedisServer, RedisServer]
TIMEOUT = 0.3  # replica_timeout of the tests' queues


@pytest.fixture(params=[MuxClient, RedisPyClient], ids=["mux", "redis-py"])
async def connect(
    request: pytest.FixtureRequest, replicated_redis: Pair
) -> AsyncIterator[Callable[[], Any]]:
    """``connect()``: a new client of the test's transport on the primary (closed after)."""
    opened: list[Any] = []

    def new_client() -> Any:
        opened.append(request.param(replicated_redis[0].url, command_timeout=2))
        return opened[-1]

    try:
        yield new_client
    finally:
        for client in opened:
            await client.close()


@pytest.fixture
def primary_client(connect: Callable[[], Any]) -> Any:
    return connect()


@pytest.fixture
async def replica_client(replicated_redis: Pair) -> AsyncIterator[MuxClient]:
    client = MuxClient(replicated_redis[1].url, command_timeout=2)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def frozen(replicated_redis: Pair) -> Iterator[RedisServer]:
    """The replica, resumed at teardown whatever the test did with it."""
    replica = replicated_redis[1]
    try:
        yield replica
    finally:
        replica.resume()


def make_queue(
    client: Any, min_replicas: int = 1, timeout: float = TIMEOUT, name: str | None = None
) -> RedisJobQueue:
    name = name or f"q-{uuid.uuid4().hex[:8]}"
    return RedisJobQueue(
        client, name, key_prefix="rkt", min_replicas=min_replicas, replica_timeout=timeout
    )


def patient(q: RedisJobQueue) -> RedisJobQueue:
    """``q`` with a long replica timeout, for the set-up writes of a test (the machine may be
    loaded: a live replica may take longer than ``TIMEOUT`` to confirm)."""
    return make_queue(q.client, timeout=10.0, name=q.name)


def elsewhere(q: RedisJobQueue, connect: Callable[[], Any]) -> RedisJobQueue:
    """The same queue through a new connection (as another process, or after a reconnect)."""
    return RedisJobQueue(
        connect(), q.name, key_prefix=q.key_prefix, min_replicas=1, replica_timeout=TIMEOUT
    )


async def replica_statuses(replica: MuxClient, q: RedisJobQueue, ids: list[str]) -> list[str]:
    """The status of each job on the replica ("" when the replica does not have it)."""
    records = await replica.execute("HMGET", q.keys.state, *ids)
    return [str(r).split("|", 1)[0] if r else "" for r in records]


async def still_waiting(task: asyncio.Task[Any], seconds: float = 0.15) -> bool:
    await asyncio.sleep(seconds)
    return not task.done()


# -- acknowledged writes return once the replica has them --------------------------------------


@pytest.mark.parametrize("min_replicas", [1, 0])
async def test_enqueue_returns_once_the_replica_has_the_jobs(
    primary_client: Any, replica_client: MuxClient, frozen: RedisServer, min_replicas: int
) -> None:
    q = make_queue(primary_client, min_replicas, timeout=5.0)  # resumed before it expires
    await q.enqueue("warm-up")
    frozen.pause()
    one = asyncio.create_task(q.enqueue("one", {"n": 1}, job_id="one"))
    many = asyncio.create_task(
        q.enqueue_many([JobSpec("many", i, job_id=f"m{i}", delay=60 * i) for i in range(3)])
    )
    if not min_replicas:  # the primary's word is enough: nothing waits for the replica
        await asyncio.wait_for(asyncio.gather(one, many), 2)
        return
    assert await still_waiting(one) and not many.done()
    frozen.resume()
    await asyncio.wait_for(asyncio.gather(one, many), 5)
    ids = ["one", "m0", "m1", "m2"]
    assert await replica_statuses(replica_client, q, ids) == [
        "waiting", "waiting", "delayed", "delayed"
    ]  # fmt: skip


async def test_completion_returns_once_the_replica_has_it(
    primary_client: Any, replica_client: MuxClient, frozen: RedisServer
) -> None:
    q = make_queue(primary_client, timeout=5.0)
    await q.enqueue("job", job_id="j")
    claimed = await q.step(StepRequest("w1", "r1", claim=1, lease=30))
    job = claimed.jobs[0]
    assert await replica_statuses(replica_client, q, ["j"]) == ["active"]  # claims too
    frozen.pause()
    done = Outcome(job.id, job.token, "done", "42")
    step = asyncio.create_task(q.step(StepRequest("w1", "r2", [done])))
    assert await still_waiting(step)
    frozen.resume()
    assert (await asyncio.wait_for(step, 5)).rejected == []
    assert await replica_statuses(replica_client, q, ["j"]) == ["completed"]


# -- a timeout is a clear error; repeating the write is safe and confirmed --------------------


async def test_enqueue_timeout_names_the_job_and_the_retry_is_confirmed(
    primary_client: Any,
    connect: Callable[[], Any],
    replica_client: MuxClient,
    frozen: RedisServer,
) -> None:
    q = make_queue(primary_client)
    await patient(q).enqueue("warm-up")
    frozen.pause()
    start = time.monotonic()
    with pytest.raises(ReplicationTimeout) as info:
        await q.enqueue("job", {"a": 1}, job_id="j-1")
    assert TIMEOUT * 0.8 < time.monotonic() - start < TIMEOUT + 1.5
    message = str(info.value)
    assert "'j-1'" in message and "0 of 1 replica" in message
    assert "REDKEEP_QUEUE_MIN_REPLICAS=1" in message and "same job id" in message
    assert info.value.job_ids == ("j-1",)
    assert (await q.get_job("j-1")) is not None  # on the primary, not confirmed
    # The retry writes nothing (the job is there). Since Redis 7.2 WAIT counts from its
    # connection's last write (before, from its last command): on a new connection (another
    # process, a reconnect) the retry must still wait for the replica to have the first write.
    with pytest.raises(ReplicationTimeout):
        await elsewhere(q, connect).enqueue("job", {"a": 1}, job_id="j-1")
    # A job enqueued without an id: the error gives the generated one.
    with pytest.raises(ReplicationTimeout) as unnamed:
        await q.enqueue("job", {"a": 2})
    generated = unnamed.value.job_ids[0]
    frozen.resume()
    first = await q.enqueue("job", {"a": 1}, job_id="j-1")
    again = await q.enqueue("job", {"a": 2}, job_id=generated)
    assert first.payload == {"a": 1} and again.payload == {"a": 2}
    assert await replica_statuses(replica_client, q, ["j-1", generated]) == ["waiting"] * 2
    assert (await q.counts())["waiting"] == 3  # warm-up, j-1, generated: none added twice


async def test_enqueue_many_timeout_names_every_job(
    primary_client: Any, frozen: RedisServer
) -> None:
    q = make_queue(primary_client)
    await patient(q).enqueue("warm-up")
    frozen.pause()
    with pytest.raises(ReplicationTimeout) as info:
        await q.enqueue_many([JobSpec("job", i, job_id=f"b{i}") for i in range(5)])
    assert info.value.job_ids == tuple(f"b{i}" for i in range(5))
    assert "5 jobs ('b0', 'b1', 'b2', ...)" in str(info.value)


async def test_a_resent_step_waits_for_its_first_run_to_be_replicated(
    primary_client: Any,
    connect: Callable[[], Any],
    replica_client: MuxClient,
    frozen: RedisServer,
) -> None:
    q = make_queue(primary_client)
    await patient(q).enqueue("job", job_id="j")
    job = (await patient(q).step(StepRequest("w1", "r1", claim=1, lease=30))).jobs[0]
    frozen.pause()
    request = StepRequest("w1", "r2", [Outcome(job.id, job.token, "done", "1")], claim=1)
    with pytest.raises(ReplicationTimeout, match="worker step 'r2' reporting 1 outcome") as info:
        await q.step(request)
    assert info.value.job_ids == ("j",)
    # The re-sent step applies nothing (its memo answers) and, sent on a new connection (as
    # after a lost reply), still waits for the replica to have the first run.
    with pytest.raises(ReplicationTimeout):
        await elsewhere(q, connect).step(request)
    frozen.resume()
    result = await q.step(request)
    assert result.rejected == [] and result.jobs == []
    assert await replica_statuses(replica_client, q, ["j"]) == ["completed"]


async def test_worker_resends_completions_until_a_replica_confirms_them(
    primary_client: Any, replica_client: MuxClient, frozen: RedisServer
) -> None:
    q = make_queue(primary_client)
    ids = [j.id for j in await patient(q).enqueue_many([JobSpec("job", i) for i in range(10)])]
    sent: list[tuple[str, tuple[str, ...], str]] = []  # request id, outcome ids, what happened
    real_step = q.step

    async def step(request: StepRequest) -> Any:  # the real step, recorded
        outcomes = tuple(o.job_id for o in request.outcomes)
        try:
            result = await real_step(request)
        except ReplicationTimeout:
            sent.append((request.request_id, outcomes, "timeout"))
            raise
        sent.append((request.request_id, outcomes, "ok"))
        return result

    q.step = step  # type: ignore[method-assign]
    release = asyncio.Event()
    runs: list[str] = []

    async def handler(job: Any) -> int:
        runs.append(job.id)
        await release.wait()
        return 1

    worker = Worker(q, {"job": handler}, concurrency=10, prefetch=0, handle_signals=False)
    running = asyncio.create_task(worker.run())
    try:
        deadline = time.monotonic() + 10
        while len(runs) < 10:
            assert time.monotonic() < deadline, f"{len(runs)} of 10 jobs started"
            await asyncio.sleep(0.02)
        frozen.pause()
        release.set()  # every job finishes while the replica cannot confirm
        while sum(1 for _, outcomes, what in sent if outcomes and what == "timeout") < 2:
            assert time.monotonic() < deadline + 10, "no completion step timed out"
            await asyncio.sleep(0.05)
        frozen.resume()
        deadline = time.monotonic() + 10
        while await replica_statuses(replica_client, q, ids) != ["completed"] * 10:
            assert time.monotonic() < deadline, "completions never reached the replica"
            await asyncio.sleep(0.05)
    finally:
        frozen.resume()
        worker.stop()
        await asyncio.wait_for(running, 15)
    assert sorted(runs) == sorted(ids)  # every job ran once
    timed_out = {(rid, o) for rid, o, what in sent if o and what == "timeout"}
    confirmed = {(rid, o) for rid, o, what in sent if o and what == "ok"}
    assert timed_out and timed_out <= confirmed  # the same step (id and outcomes), sent again
    assert {i for _, o in confirmed for i in o} == set(ids)  # until each outcome was confirmed


@pytest.mark.sentinel
async def test_sentinel_enqueue_waits_for_the_replica(redis_sentinel: Any) -> None:
    client = RedisPyClient(redis_sentinel.url, command_timeout=2)
    primary_port = redis_sentinel.primary_port()
    replica = next(s for s in redis_sentinel.servers if s.port != primary_port)
    try:
        q = make_queue(client)
        await patient(q).enqueue("warm-up")
        replica.pause()  # shorter than the sentinels' down-after time
        try:
            with pytest.raises(ReplicationTimeout, match="'s-1'"):
                await q.enqueue("job", job_id="s-1")
        finally:
            replica.resume()
        await q.enqueue("job", job_id="s-1")
        assert replica.cli("HEXISTS", q.keys.state, "s-1").strip() == "1"
    finally:
        await client.close()


def test_http_enqueue_timeout_is_a_503_naming_the_job(
    replicated_redis: Pair, frozen: RedisServer
) -> None:
    settings = redis_settings(
        replicated_redis[0].url, "rkt", queue_min_replicas=1, queue_replica_timeout=TIMEOUT
    )
    server = ServerThread(settings).start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
            body = {"name": "echo", "job_id": "h-1"}
            assert c.post("/v1/queues/acked/jobs", json=body).status_code == 201
            frozen.pause()
            r = c.post("/v1/queues/acked/jobs", json={"name": "echo", "job_id": "h-2"})
            assert r.status_code == 503 and r.headers["Retry-After"] == "1"
            message = r.json()["error"]["message"]
            assert "'h-2'" in message and "REDKEEP_QUEUE_MIN_REPLICAS=1" in message
            frozen.resume()
            assert c.post("/v1/queues/acked/jobs", json=body | {"job_id": "h-2"}).status_code in (
                200, 201
            )  # fmt: skip
    finally:
        frozen.resume()
        server.stop()


# -- settings and refusals -----------------------------------------------------------------------


async def test_settings_reach_the_queue_and_the_startup_check(replicated_redis: Pair) -> None:
    primary, _ = replicated_redis
    settings = Settings(
        backend="redis", redis_url=primary.url, queue_min_replicas=1, queue_replica_timeout=0.5
    )
    async with Services(settings) as services:
        q = services.queue("acked")
        assert isinstance(q, RedisJobQueue)
        assert (q.min_replicas, q.replica_timeout) == (1, 0.5)
        assert not any("REPLICAS" in w for w in services.warnings)
    two = settings.model_copy(update={"queue_min_replicas": 2})
    async with Services(two) as services:  # degraded startup: a warning naming the setting
        assert any("REDKEEP_QUEUE_MIN_REPLICAS=2" in w for w in services.warnings)
    strict = two.model_copy(update={"startup": "strict"})
    with pytest.raises(StartupError, match=r"1 connected replica.*REDKEEP_QUEUE_MIN_REPLICAS=2"):
        await Services(strict).start()


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"REDKEEP_REDIS_URL": "redis://127.0.0.1:1", "REDKEEP_REDIS_CLUSTER": "1"}, "Cluster"),
        ({"REDKEEP_UPSTASH_URL": "https://x.io", "REDKEEP_UPSTASH_TOKEN": "t"}, "Upstash REST"),
        ({}, "memory backend"),
    ],
    ids=["cluster", "upstash", "memory"],
)
def test_settings_refuse_min_replicas_without_wait(
    env: dict[str, str], reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.upper().startswith(("REDKEEP_", "UPSTASH_"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REDKEEP_QUEUE_MIN_REPLICAS", "1")
    with pytest.raises(ConfigError, match=reason) as info:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert list(info.value.problems) == ["REDKEEP_QUEUE_MIN_REPLICAS"]
    monkeypatch.setenv("REDKEEP_QUEUE_MIN_REPLICAS", "0")
    Settings(_env_file=None)  # type: ignore[call-arg]


async def test_queue_refuses_min_replicas_on_cluster_and_upstash() -> None:
    clients = [
        RedisPyClient("redis://127.0.0.1:1", cluster=True),
        UpstashRestClient("https://x.upstash.io", "token"),
    ]
    try:
        for client, where in zip(clients, ["Redis Cluster", "Upstash REST"], strict=True):
            with pytest.raises(ConfigError, match=f"REDKEEP_QUEUE_MIN_REPLICAS.*{where}"):
                RedisJobQueue(client, "q", min_replicas=1)
            RedisJobQueue(client, "q")  # without the option: fine
    finally:
        for client in clients:
            await client.close()
