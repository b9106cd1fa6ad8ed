"""The enqueue outbox (redkeep.queue.outbox): enqueues held locally while Redis is unreachable,
relayed in order with their ids once it is back. Outages are real: a private redis-server is
SIGKILLed (or SIGSTOPped) and restarted; only the lost-reply test uses a fake, said there."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from redkeep.errors import (
    BackendResponseError,
    BackendTimeout,
    InvalidJob,
    JobError,
    OutboxCorrupted,
    OutboxError,
    OutboxFull,
    PayloadTooLarge,
    SerializationError,
)
from redkeep.queue import Job, JobSpec, JobStatus, Outbox, RedisJobQueue, Worker
from redkeep.queue.outbox_store import OutboxStore
from redkeep.redis.mux import MuxClient
from redkeep.resilience import CircuitBreaker
from tests.support.redis_server import RedisServer


@dataclass
class Outage:
    """A private redis-server, a client on it and a factory of queues with an outbox."""

    server: RedisServer
    client: MuxClient
    path: Path
    prefix: str
    outboxes: list[Outbox] = field(default_factory=list)

    async def queue(
        self, name: str = "jobs", path: Path | None = None, **options: Any
    ) -> tuple[RedisJobQueue, Outbox]:
        options.setdefault("breaker", CircuitBreaker("queue", reset_timeout=0.2))
        outbox = await Outbox(path or self.path, namespace=self.prefix, **options).open()
        self.outboxes.append(outbox)
        queue = RedisJobQueue(self.client, name, key_prefix=self.prefix)
        outbox.attach(queue)
        return queue, outbox

    def kill(self) -> None:
        self.server.kill()

    async def restart(self) -> None:
        await asyncio.to_thread(self.server.start)


def fast_client(url: str) -> MuxClient:
    return MuxClient(url, command_timeout=0.5, connect_timeout=0.5, retry_max_delay=0.05)


@pytest.fixture
async def outage(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> AsyncIterator[Outage]:
    server = redis_server_factory(appendonly=True, appendfsync="always")
    o = Outage(server, fast_client(server.url), tmp_path / "outbox.sqlite3", "ob")
    try:
        yield o
    finally:
        for outbox in o.outboxes:
            await outbox.close()
        await o.client.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_enqueue_goes_straight_to_redis_while_it_answers(outage: Outage) -> None:
    queue, outbox = await outage.queue()
    job = await queue.enqueue("a", {"n": 1})
    assert job.status == JobStatus.WAITING
    (many,) = await queue.enqueue_many([JobSpec("b")])
    assert many.status == JobStatus.WAITING
    counts = await queue.counts()
    assert (counts["waiting"], counts["outbox"]) == (2, 0)
    assert (await outbox.stats()).held == {}


async def test_outage_enqueues_are_held_then_relayed_in_order_with_their_ids(
    outage: Outage,
) -> None:
    queue, outbox = await outage.queue()
    outage.kill()
    held = [await queue.enqueue("work", {"i": i}) for i in range(5)]
    held += await queue.enqueue_many([JobSpec("work", {"i": i}) for i in range(5, 10)])
    delayed = await queue.enqueue("later", None, delay=30)
    chosen = await queue.enqueue("work", {"i": "c"}, job_id="chosen-1", priority=0)
    held.append(chosen)
    assert {j.status for j in [*held, delayed]} == {JobStatus.OUTBOX}
    # Reads answer for held jobs while Redis is down.
    assert await queue.get_job(held[3].id) == held[3]
    listed = await queue.list_jobs("outbox", 0, 100)
    assert [j.id for j in listed] == [j.id for j in held[:10]] + [delayed.id, chosen.id]
    assert all(j.payload == h.payload for j, h in zip(listed, held[:10], strict=False))

    await outage.restart()
    assert await outbox.drained(20)
    waiting = await queue.list_jobs("waiting", 0, 100)
    assert [j.id for j in waiting] == [j.id for j in held]  # same ids, enqueue order
    assert [j.payload for j in waiting] == [j.payload for j in held]
    assert (await queue.counts())["outbox"] == 0
    # The delay counts from the enqueue, not from the relay.
    stored = await queue.get_job(delayed.id)
    assert stored is not None and stored.status == JobStatus.DELAYED
    assert stored.run_at is not None and delayed.run_at is not None
    assert abs(stored.run_at - delayed.run_at) < 1.0
    stats = await outbox.stats()
    assert stats.held == {"jobs": 12} and stats.relayed == {"jobs": 12}
    # Back to the direct path once everything is relayed.
    assert (await queue.enqueue("work")).status == JobStatus.WAITING


async def test_held_jobs_keep_their_headers_through_the_relay(outage: Outage) -> None:
    queue, outbox = await outage.queue()
    outage.kill()
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    held = await queue.enqueue("work", 1, headers=headers)
    assert held.status == JobStatus.OUTBOX and dict(held.headers) == headers
    got = await queue.get_job(held.id)
    assert got is not None and dict(got.headers) == headers
    await outage.restart()
    assert await outbox.drained(20)
    stored = await queue.get_job(held.id)
    assert stored is not None and stored.status == JobStatus.WAITING
    assert dict(stored.headers) == headers


async def test_later_enqueues_queue_up_behind_held_jobs(outage: Outage) -> None:
    # The breaker is opened by hand with a long reset: Redis answers, yet the relay waits, so
    # the "held behind" rule is observable. One producer's order must survive.
    breaker = CircuitBreaker("queue", reset_timeout=60)
    queue, outbox = await outage.queue(breaker=breaker)
    breaker.trip()
    first = await queue.enqueue("work", 1)
    breaker.reset()  # Redis is reachable again, but job 1 has not been relayed yet
    second = await queue.enqueue("work", 2)
    assert (first.status, second.status) == (JobStatus.OUTBOX, JobStatus.OUTBOX)
    counts = await queue.counts()  # Redis answers; the held jobs are counted apart
    assert (counts["outbox"], counts["waiting"]) == (2, 0)
    assert await outbox.drained(10)
    assert [j.payload for j in await queue.list_jobs("waiting")] == [1, 2]


async def test_enqueue_many_is_held_all_or_nothing_and_limits_are_typed(outage: Outage) -> None:
    queue, outbox = await outage.queue(max_jobs=5, max_bytes=4000)
    outage.kill()
    await queue.enqueue_many([JobSpec("a", i) for i in range(3)])
    with pytest.raises(OutboxFull, match="3 of 5 jobs") as info:
        await queue.enqueue_many([JobSpec("a", i) for i in range(3)])
    assert (info.value.jobs, info.value.max_jobs) == (3, 5)
    assert await queue.outbox.count("jobs") == 3  # type: ignore[union-attr]
    await queue.enqueue_many([JobSpec("a", i) for i in range(2)])
    with pytest.raises(OutboxFull, match="5 of 5 jobs"):
        await queue.enqueue("a")
    stats = await outbox.stats()
    assert stats.rejected == {"jobs": 4} and stats.full
    assert (await outbox.health())["status"] == "full"

    small, _ = await outage.queue("small", path=outage.path.with_name("small.sqlite3"),
                                  max_bytes=1000)  # fmt: skip
    with pytest.raises(OutboxFull, match="bytes held"):
        await small.enqueue("a", "x" * 2000)


async def test_bad_input_still_raises_during_an_outage(outage: Outage) -> None:
    queue, outbox = await outage.queue()
    outage.kill()
    with pytest.raises(InvalidJob, match="priority"):
        await queue.enqueue("a", priority=5000)
    with pytest.raises(SerializationError):
        await queue.enqueue("a", object())
    with pytest.raises(PayloadTooLarge):
        await queue.enqueue("a", "x" * (queue.max_payload_bytes + 1))
    with pytest.raises(InvalidJob, match="delay or run_at"):
        await queue.enqueue_many([JobSpec("a"), JobSpec("b", delay=1, run_at=time.time())])
    assert await outbox.count("jobs") == 0


async def test_errors_that_are_not_an_outage_are_raised_not_held(
    resp_client: MuxClient, prefix: str, tmp_path: Path
) -> None:
    async with Outbox(tmp_path / "o.sqlite3", namespace=prefix) as outbox:
        queue = RedisJobQueue(resp_client, "wrong", key_prefix=prefix)
        outbox.attach(queue)
        await resp_client.execute("SET", queue.keys.waiting, "not a zset")
        with pytest.raises(BackendResponseError, match="WRONGTYPE"):
            await queue.enqueue("a")
        assert await outbox.count("wrong") == 0
        assert outbox.breaker.state == "closed"  # an answer proves Redis is reachable


async def test_a_queue_that_cannot_be_relayed_keeps_its_jobs_and_blocks_no_other(
    resp_client: MuxClient, prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "o.sqlite3"
    breaker = CircuitBreaker("queue", reset_timeout=3600)
    breaker.trip()
    async with Outbox(path, namespace=prefix, breaker=breaker) as earlier:
        for name in ("other", "fine"):
            queue = RedisJobQueue(resp_client, name, key_prefix=prefix)
            earlier.attach(queue)
            await queue.enqueue("a", name)
    known = {"fine"}

    def factory(name: str) -> RedisJobQueue:
        if name not in known:  # e.g. Services refusing a 257th queue
            raise ValueError(f"no room for queue {name!r}")
        return RedisJobQueue(resp_client, name, key_prefix=prefix)

    async with Outbox(path, namespace=prefix, queue_factory=factory) as later:
        for _ in range(100):
            if not await later.count("fine") and (await later.health())["last_error"]:
                break
            await asyncio.sleep(0.05)
        health = await later.health()
        assert health["queues"] == {"other": 1}  # "fine" was relayed, "other" kept
        assert "no room for queue 'other'" in health["last_error"]
        known.add("other")
        assert await later.drained(10)
    other = RedisJobQueue(resp_client, "other", key_prefix=prefix)
    assert [j.payload for j in await other.list_jobs("waiting")] == ["other"]


async def test_caller_chosen_ids_stay_idempotent(outage: Outage) -> None:
    queue, outbox = await outage.queue()
    await queue.enqueue("a", "original", job_id="known")
    outage.kill()
    first = await queue.enqueue("a", "held", job_id="new")
    again = await queue.enqueue("a", "ignored", job_id="new")
    assert again.id == "new" and again.payload == "held" and again.status == JobStatus.OUTBOX
    shadow = await queue.enqueue("a", "shadow", job_id="known")  # cannot check Redis now
    assert shadow.status == JobStatus.OUTBOX
    assert await outbox.count("jobs") == 2
    await outage.restart()
    assert await outbox.drained(20)
    known = await queue.get_job("known")
    assert known is not None and known.payload == "original"  # the existing job is kept
    new = await queue.get_job("new")
    assert new is not None and new.payload == first.payload == "held"
    assert (await queue.counts())["waiting"] == 2


class LosesOneReply(MuxClient):
    """A fake for a fault a real server cannot be asked for: the next enqueue script runs in
    Redis, then its reply is "lost" (BackendTimeout), as when a connection drops after the
    request was sent."""

    lose_next = False

    async def evalsha(self, script: Any, keys: Any, args: Any, **options: Any) -> Any:
        reply = await super().evalsha(script, keys, args, **options)
        if self.lose_next:
            self.lose_next = False
            raise BackendTimeout("reply lost after the request reached Redis")
        return reply


async def test_an_enqueue_whose_reply_was_lost_is_relayed_without_a_duplicate(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    # The lost reply opens the breaker (threshold 1, long reset), so the relay waits while a
    # worker runs the job that did reach Redis; only then is the held copy relayed. It must
    # find the finished job and leave it alone: one run, still completed.
    client = LosesOneReply(redis_url)
    breaker = CircuitBreaker("queue", failure_threshold=1, reset_timeout=3600)
    runs: list[str] = []

    async def work(j: Job) -> None:
        runs.append(j.id)

    async def completed(queue: RedisJobQueue, n: int) -> bool:
        for _ in range(200):
            if (await queue.counts())["completed"] == n:
                return True
            await asyncio.sleep(0.05)
        return False

    try:
        async with Outbox(tmp_path / "o.sqlite3", namespace=prefix, breaker=breaker) as outbox:
            queue = RedisJobQueue(client, "lost", key_prefix=prefix)
            outbox.attach(queue)
            client.lose_next = True
            job = await queue.enqueue("work", {"once": True})
            assert job.status == JobStatus.OUTBOX  # held, although Redis has it already
            assert breaker.state == "open" and await outbox.count("lost") == 1
            worker = Worker(queue, {"work": work}, handle_signals=False)
            task = asyncio.create_task(worker.run())
            try:
                assert await completed(queue, 1)  # the copy that reached Redis ran
                breaker.reset()
                assert await outbox.drained(10)  # the held copy was relayed...
                await asyncio.sleep(0.5)  # ...and gave the worker nothing to run again
            finally:
                worker.stop()
                await task
            assert runs == [job.id]
            stored = await queue.get_job(job.id)
            assert stored is not None and stored.status == JobStatus.COMPLETED
    finally:
        await client.close()


async def test_a_hung_redis_diverts_after_the_command_timeout(outage: Outage) -> None:
    queue, outbox = await outage.queue()
    await queue.enqueue("warm-up")
    outage.server.pause()
    try:
        job = await queue.enqueue("work", job_id="while-hung")
        assert job.status == JobStatus.OUTBOX
    finally:
        outage.server.resume()
    assert await outbox.drained(20)
    counts = await queue.counts()
    assert counts["waiting"] == 2  # the original request and the relay made one job


async def test_held_jobs_cannot_be_cancelled_retried_or_deleted_yet(outage: Outage) -> None:
    queue, _ = await outage.queue()
    outage.kill()
    job = await queue.enqueue("a")
    with pytest.raises(JobError, match="held in the enqueue outbox"):
        await queue.cancel(job.id)
    with pytest.raises(JobError, match="held in the enqueue outbox"):
        await queue.retry(job.id)
    with pytest.raises(JobError, match="be deleted once it is relayed"):
        await queue.delete_job(job.id)


async def test_a_restarted_process_relays_what_an_earlier_one_left(outage: Outage) -> None:
    queue, outbox = await outage.queue()
    outage.kill()
    ids = [(await queue.enqueue("a", i)).id for i in range(20)]
    await outbox.close()
    outage.outboxes.remove(outbox)
    await outage.restart()
    made: list[str] = []

    def factory(name: str) -> RedisJobQueue:
        made.append(name)
        return RedisJobQueue(outage.client, name, key_prefix=outage.prefix)

    async with Outbox(outage.path, namespace=outage.prefix, queue_factory=factory) as later:
        assert await later.drained(20)
    assert made == ["jobs"]
    assert [j.id for j in await queue.list_jobs("waiting", 0, 100)] == ids


async def test_processes_sharing_a_file_relay_one_round_at_a_time(outage: Outage) -> None:
    # Two outboxes on one file stand for two processes: SQLite connections and flock locks
    # conflict between separate connections and open file descriptions even in one process.
    queue_a, a = await outage.queue("shared")
    queue_b, b = await outage.queue("shared")
    outage.kill()
    ids_a = [(await queue_a.enqueue("a", i)).id for i in range(30)]
    ids_b = [(await queue_b.enqueue("b", i)).id for i in range(30)]
    assert await a.count("shared") == 60  # both see every held job
    await outage.restart()
    assert await a.drained(20)
    relayed = (await a.stats()).relayed.get("shared", 0) + (await b.stats()).relayed.get(
        "shared", 0
    )
    assert relayed == 60  # each job relayed once, by one of them
    waiting = [j.id for j in await queue_a.list_jobs("waiting", 0, 100)]
    assert sorted(waiting) == sorted(ids_a + ids_b)
    assert [i for i in waiting if i in ids_a] == ids_a  # each producer's order kept
    assert [i for i in waiting if i in ids_b] == ids_b


async def test_the_relay_lock_lets_one_store_at_a_time(tmp_path: Path) -> None:
    first = await OutboxStore.open(tmp_path / "o.sqlite3", "redkeep", 10, 10_000)
    second = await OutboxStore.open(tmp_path / "o.sqlite3", "redkeep", 10, 10_000)
    try:
        assert first.try_lock_relay() and not second.try_lock_relay()
        first.unlock_relay()
        assert second.try_lock_relay() and not first.try_lock_relay()
    finally:
        await first.close()
        await second.close()


async def test_opening_a_new_file_waits_while_another_process_sets_it_up(tmp_path: Path) -> None:
    """Several processes opening one new file at once: switching it to WAL fails at once with
    "database is locked" (SQLite does not wait its busy timeout there) while another connection
    holds a write lock on it. Opening waits for that lock instead of failing at startup."""
    path = tmp_path / "o.sqlite3"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # a write lock, before the file is in WAL mode
    other.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, other.execute, "COMMIT")
    try:
        started = time.monotonic()
        store = await OutboxStore.open(path, "redkeep", 10, 10_000)
        waited = time.monotonic() - started
        await store.close()
    finally:
        other.close()
    assert 0.25 <= waited < 5.0


async def test_opening_the_file_while_another_process_writes_is_not_corruption(
    tmp_path: Path,
) -> None:
    # The start-up check reads the file in one snapshot: a writer between two of its reads must
    # not look like inconsistent totals.
    path = tmp_path / "o.sqlite3"
    writer_breaker = CircuitBreaker("queue", reset_timeout=3600)
    writer_breaker.trip()
    client = fast_client("redis://127.0.0.1:1")
    async with Outbox(path, breaker=writer_breaker) as writer:
        queue = RedisJobQueue(client, "busy")
        writer.attach(queue)
        await queue.enqueue("a")
        done = asyncio.Event()

        async def write() -> None:
            while not done.is_set():
                await queue.enqueue_many([JobSpec("a", i) for i in range(20)])

        task = asyncio.create_task(write())
        try:
            for _ in range(40):
                breaker = CircuitBreaker("queue", reset_timeout=3600)
                breaker.trip()
                async with Outbox(path, breaker=breaker):
                    pass
        finally:
            done.set()
            await task
    await client.close()


def write_outbox_file(path: Path, prefix: str, jobs: int) -> None:
    """A real outbox file with ``jobs`` held jobs, written through the public API."""

    async def fill() -> None:
        client = fast_client("redis://127.0.0.1:1")  # nothing listens: every enqueue is held
        breaker = CircuitBreaker("queue", reset_timeout=60)
        breaker.trip()
        async with Outbox(path, namespace=prefix, breaker=breaker) as outbox:
            queue = RedisJobQueue(client, "jobs", key_prefix=prefix)
            outbox.attach(queue)
            await queue.enqueue_many(
                [JobSpec("a", {"i": i, "pad": "x" * 200}) for i in range(jobs)]
            )
        await client.close()

    asyncio.run(fill())


def damage_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    data[4 * page : 5 * page] = bytes(range(256)) * (page // 256)
    path.write_bytes(bytes(data))


def foreign_database(path: Path) -> None:
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)")


def inconsistent_totals(path: Path) -> None:
    with sqlite3.connect(path) as con:
        con.execute("DROP TRIGGER job_gone")
        con.execute("DELETE FROM jobs WHERE seq < 10")


def garbage(path: Path) -> None:
    path.write_bytes(uuid.uuid4().bytes * 300)


@pytest.mark.parametrize(
    ("spoil", "held", "reason"),
    [
        (garbage, 0, "file is not a database"),
        (damage_page, 1000, "malformed|corrupt|invalid|Page"),
        (foreign_database, 0, r"tables \['accounts'\]"),
        (inconsistent_totals, 100, "totals do not match"),
    ],
    ids=["garbage", "damaged-page", "foreign-tables", "inconsistent-totals"],
)
def test_a_corrupted_file_stops_startup_and_is_left_untouched(
    tmp_path: Path, spoil: Callable[[Path], None], held: int, reason: str
) -> None:
    path = tmp_path / "outbox.sqlite3"
    if held:
        write_outbox_file(path, "ob", held)
    spoil(path)
    before = digest(path)

    async def start() -> None:
        from redkeep.config import Settings
        from redkeep.services import Services

        settings = Settings(
            redis_url="redis://127.0.0.1:1", queue_outbox=path, key_prefix="ob",
            connect_max_wait=0.1, startup="degraded",
        )  # fmt: skip
        services = Services(settings)
        try:
            await services.start()
        finally:
            await services.close()

    with pytest.raises(OutboxCorrupted, match=reason) as info:
        asyncio.run(start())
    assert str(path) in str(info.value) and "left untouched" in str(info.value)
    assert digest(path) == before


def test_an_outbox_of_another_key_prefix_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    write_outbox_file(path, "app-a", 3)
    before = digest(path)

    async def open_for_b() -> None:
        async with Outbox(path, namespace="app-b"):
            pass

    with pytest.raises(OutboxError, match="key prefix 'app-a', not 'app-b'"):
        asyncio.run(open_for_b())
    assert digest(path) == before


async def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="is not a directory"):
        await Outbox(tmp_path / "nope" / "outbox.sqlite3").open()


FORKING_HOLDER = """
import asyncio, os, sys, time
from redkeep.queue.outbox_store import OutboxStore

async def main():
    store = await OutboxStore.open(sys.argv[1], "redkeep", 10, 10_000)
    assert store.try_lock_relay()  # as during a relay round
    if os.fork() == 0:
        # fork() returns here after the at-fork handlers ran: the child's copy of the lock's
        # descriptor is closed; only now may the test kill the parent and take the lock
        print(os.getpid(), flush=True)
        time.sleep(30)
        os._exit(0)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_forked_child_does_not_keep_the_relay_lock(tmp_path: Path) -> None:
    # A process forks while it holds the relay lock, then dies (SIGKILL): the child, which
    # inherited the lock's file descriptor, must not keep the lock from the next process.
    # (The child reports once its after-fork handler ran: under CPU load the parent could
    # otherwise be killed, and the lock tried, before the child was first scheduled.)
    path = tmp_path / "o.sqlite3"
    holder = subprocess.Popen(
        [sys.executable, "-c", FORKING_HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    child = int(await asyncio.to_thread(holder.stdout.readline))
    try:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        successor = await OutboxStore.open(path, "redkeep", 10, 10_000)
        try:
            assert successor.try_lock_relay(), "the forked child kept the relay lock"
        finally:
            await successor.close()
    finally:
        os.kill(child, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)
