"""Backoff bounds, key layout and construction from Settings (no Redis needed)."""

from __future__ import annotations

import pytest

from redkeep.config import Settings
from redkeep.queue import Backoff, InvalidJob, MemoryJobQueue, Worker
from redkeep.queue.job import STATUSES
from redkeep.queue.keys import QueueKeys, V1Keys, validate_queue_name


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 8, 12, 40])
def test_exponential_backoff_stays_within_equal_jitter_bounds(attempt: int) -> None:
    b = Backoff(base=1.0, max_delay=3600.0)
    step = min(3600.0, 2.0 ** (attempt - 1))
    delays = [b.delay(attempt) for _ in range(200)]
    assert all(step / 2 <= d <= step for d in delays)
    assert max(delays) - min(delays) > 0  # jittered
    assert b.step(attempt) == step


def test_backoff_cap_fixed_and_no_jitter() -> None:
    assert Backoff(1.0, 10.0).step(30) == 10.0
    assert Backoff(2.0, 60.0, jitter=False).delay(3) == 8.0
    assert Backoff(5.0, 60.0, kind="fixed", jitter=False).delay(9) == 5.0
    assert Backoff.from_list(Backoff(3.0, 9.0, "fixed", False).to_list()) == Backoff(
        3.0, 9.0, "fixed", False
    )
    with pytest.raises(ValueError, match="kind"):
        Backoff(kind="linear")
    with pytest.raises(ValueError, match=">= 0"):
        Backoff(base=-1)


def test_all_keys_of_a_queue_share_one_hash_tag() -> None:
    k = QueueKeys("app", "emails")
    keys = [*k.all_static(), k.wake("host:1:ff")]
    assert all(key.startswith("{app:q:emails}:v2:") for key in keys)
    assert len(set(keys)) == len(keys)
    v1 = V1Keys("app", "emails")  # redkeep 0.1's keys (read by the upgrade) never collide
    old = [v1.job("abc"), v1.seq, *v1.others(), *(v1.status_key(s) for s in STATUSES)]
    assert all(o.startswith("{app:q:emails}:") for o in old) and not set(old) & set(keys)


@pytest.mark.parametrize("bad", ["", "a b", "x{y}", "q*", "n" * 201])
def test_bad_queue_names_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_queue_name(bad)
    with pytest.raises(InvalidJob):
        MemoryJobQueue(bad)


def test_worker_from_settings_uses_queue_settings() -> None:
    settings = Settings(
        backend="memory", queue_concurrency=7, queue_lease=12.0, queue_grace_period=3.0
    )
    worker = Worker.from_settings(MemoryJobQueue("s"), {"x": print}, settings)
    assert (worker.concurrency, worker.lease, worker.grace_period) == (7, 12.0, 3.0)
    assert worker.prefetch == 7 and worker.renew_interval == 1.0
    with pytest.raises(InvalidJob):
        Worker([], {})
    with pytest.raises(InvalidJob):
        Worker(MemoryJobQueue("s"), {}, concurrency=0)


def test_job_ids_are_unique_across_forked_processes() -> None:
    import os

    from redkeep.queue.job import new_job_id

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report a few ids and exit at once
        os.write(write, " ".join(new_job_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode().split()
    os.close(read)
    parent = [new_job_id() for _ in range(3)]
    assert len(child) == 3 and not set(child) & set(parent)


def test_job_ids_are_random_short_and_sortable_by_time() -> None:
    import re
    import time

    from redkeep.queue.job import new_job_id
    from redkeep.web.routing import JOB_ID_PATTERN

    burst = [new_job_id() for _ in range(20_000)]
    assert len(set(burst)) == len(burst)
    assert all(len(i) == 22 and re.fullmatch(JOB_ID_PATTERN, i) for i in burst)
    # the first 8 characters are the millisecond: ids of one millisecond differ in the rest,
    # which comes from os.urandom (80 bits): no two share more than a few random characters
    same_ms = [i for i in burst if i[:8] == burst[0][:8]]
    assert len({i[8:12] for i in same_ms}) == len(same_ms)
    earlier = new_job_id()
    time.sleep(0.002)
    later = [new_job_id() for _ in range(50)]
    assert all(earlier < i for i in later)  # sortable by creation time (ms)


async def test_memory_queue_byte_limit() -> None:
    from redkeep.errors import QueueFull
    from redkeep.queue import Job, JobSpec, JobStatus
    from redkeep.queue.memory import JOB_OVERHEAD

    payload = {"blob": "x" * 5000}
    q = MemoryJobQueue("full")
    jobs = [await q.enqueue("h", payload)]
    per_job = q.size_bytes
    assert JOB_OVERHEAD + 5000 < per_job < JOB_OVERHEAD + 5100
    q.max_bytes = 4 * per_job + 20  # room for four jobs (ids may grow by a few characters)
    jobs += [await q.enqueue("h", payload) for _ in range(2)]
    with pytest.raises(QueueFull, match="memory queue 'full' is full") as caught:
        await q.enqueue_many([JobSpec("h", payload), JobSpec("h", payload)])  # all or nothing
    assert caught.value.limit == q.max_bytes
    assert (await q.counts())["waiting"] == 3
    # Finished jobs make room: the oldest completed or cancelled ones go early when needed.
    done = Job(id="done-1", name="h", queue="full", payload=payload, status=JobStatus.COMPLETED)
    assert await q.restore_job(done)
    await q.enqueue("h", payload)
    counts = await q.counts()
    assert (counts["completed"], counts["waiting"]) == (0, 4)
    assert await q.get_job("done-1") is None
    with pytest.raises(QueueFull):
        await q.enqueue("h", payload)
    await q.cancel(jobs[0].id)
    await q.enqueue("h", payload)
    counts = await q.counts()
    assert (counts["cancelled"], counts["waiting"]) == (0, 4)
    assert q.size_bytes <= q.max_bytes
    assert await q.purge(JobStatus.COMPLETED) == 0
    assert 4 * per_job <= q.size_bytes <= 4 * per_job + 4  # ids grow by a hex digit at most
