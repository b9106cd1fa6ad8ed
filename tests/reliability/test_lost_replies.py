"""Scenario 9: lost replies. 10,000 enqueue-and-process cycles through a loopback
proxy that, at random points, cuts a connection after the server ran a command and before its
reply reached redkeep (tests/support/proxy.py). The transport then sends the command again.

Every queue write is safe to send twice: an enqueue carries its job id from the client (the
re-sent one finds its own job), a worker step carries a request id whose reply the script
remembers (the re-sent one returns the same claimed jobs and applies nothing), a lease renewal
only renews again. Checked: 0 jobs enqueued twice, 0 acknowledged enqueues lost, 0 steps applied
twice. A job may run twice only where its lease expired (a lost reply of the blocking pop that
delivered a handed-off job: that job is recovered after its lease); each such case is counted
and must carry the lease-expiry error.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from redkeep.errors import BackendError
from redkeep.queue import Job, RedisJobQueue, RetentionPolicy, Worker
from redkeep.queue.job import new_job_id
from redkeep.queue.protocol import StepRequest, StepResult
from redkeep.redis.mux import MuxClient
from tests.queue.conftest import wait_until
from tests.reliability.harness import Figures
from tests.support.proxy import FaultProxy

pytestmark = pytest.mark.slow

CYCLES = 10_000
WAITED = 1_000  # of which enqueued one at a time, each awaited until processed (hand-offs)
PRODUCERS = 4
DROP_RATE = 0.004  # of every command through the proxy (about 1 in 250)
LEASE = 2.0


@pytest.mark.timeout(240)
async def test_lost_replies_never_duplicate_or_lose_jobs(
    redis_server_factory: Any, figures: Callable[[str, str], Figures]
) -> None:
    fig = figures("lost_replies", "Replies lost after Redis ran the command (fault proxy)")
    fig.bounds(cycles=CYCLES, awaited_one_by_one=WAITED, producers=PRODUCERS,
               drop_rate=DROP_RATE, lease_s=LEASE)  # fmt: skip
    server = redis_server_factory()
    proxy = FaultProxy(server.port, drop_rate=DROP_RATE, seed=7)
    opts = {"retry_attempts": 5, "retry_base_delay": 0.01, "retry_max_delay": 0.05}
    producer = MuxClient(proxy.url(), **opts)  # type: ignore[arg-type]
    worker_client = MuxClient(proxy.url(), **opts)  # type: ignore[arg-type]
    direct = MuxClient(server.url)
    prefix = f"rkt:{uuid.uuid4().hex[:12]}"
    keep = RetentionPolicy(3600, 2 * CYCLES, 3600, 2 * CYCLES)
    q_in = RedisJobQueue(producer, "resend", key_prefix=prefix, retention=keep)
    q_work = RedisJobQueue(worker_client, "resend", key_prefix=prefix, retention=keep)
    q_check = RedisJobQueue(direct, "resend", key_prefix=prefix, retention=keep)

    runs: collections.Counter[str] = collections.Counter()
    ran: dict[str, asyncio.Event] = {}
    rejected: list[str] = []
    acknowledged: list[str] = []
    refused = 0

    async def work(job: Job) -> str:
        runs[job.id] += 1
        event = ran.get(job.id)
        if event is not None:
            event.set()
        return job.id

    original_step = q_work.step

    async def recording_step(request: StepRequest) -> StepResult:
        result = await original_step(request)
        rejected.extend(result.rejected)
        return result

    q_work.step = recording_step  # type: ignore[method-assign]

    async def produce(n: int) -> None:
        nonlocal refused
        for _ in range(n):
            job_id = new_job_id()
            for _attempt in range(20):  # the caller's retry, with the same id: idempotent
                try:
                    await q_in.enqueue("work", {"n": job_id}, job_id=job_id)
                    acknowledged.append(job_id)
                    break
                except BackendError:
                    refused += 1
                    await asyncio.sleep(0.01)

    async def enqueue_and_wait(n: int) -> None:
        for _ in range(n):
            job_id = new_job_id()
            ran[job_id] = asyncio.Event()
            with contextlib.suppress(BackendError):
                job = await q_in.enqueue("work", job_id=job_id)
                acknowledged.append(job.id)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ran[job_id].wait(), LEASE + 3)

    worker = Worker(q_work, {"work": work}, concurrency=10, lease=LEASE, handle_signals=False)
    started = time.monotonic()
    task = asyncio.create_task(worker.run())
    try:
        per = (CYCLES - WAITED) // PRODUCERS
        await asyncio.gather(*(produce(per) for _ in range(PRODUCERS)))
        await enqueue_and_wait(WAITED)

        async def all_completed() -> bool:
            return (await q_check.counts())["completed"] >= len(set(acknowledged))

        await wait_until(all_completed, timeout=60, interval=0.2)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
        proxy.close()
        elapsed = time.monotonic() - started
        await producer.close()
        await worker_client.close()

    try:
        ids = set(acknowledged)
        counts = await q_check.counts()
        stored = await direct.execute("HKEYS", q_check.keys.state)
        jobs = {j.id: j for j in await q_check._jobs(sorted(stored))}
        twice = {i: n for i, n in runs.items() if n > 1}
        lease_expired = {
            i for i, j in jobs.items()
            if j.attempts > 1 and j.error is not None and j.error.type == "LeaseExpired"
        }  # fmt: skip
        lost_pops = {i for i in lease_expired if runs[i] == 1}
        dropped = collections.Counter(
            name for name, ran_on_server in proxy.dropped if ran_on_server
        )
        fig.record(
            jobs=len(acknowledged), refused_after_retries=refused, kills=len(proxy.dropped),
            lost_replies=dict(dropped), commands=proxy.commands,
            duplicates=len(set(stored) - ids), lost=len(ids - set(stored)),
            ran_twice=len(twice), recovered_after_lease=len(lost_pops),
            outcomes_rejected=len(rejected), run_s=round(elapsed, 1),
        )  # fmt: skip
        assert len(acknowledged) == len(ids) >= CYCLES - 10  # the producers rarely gave up
        assert len(proxy.dropped) >= 20, "too few faults injected to prove anything"
        assert dropped["EVALSHA"] >= 10, "no lost reply of a script"
        # 0 jobs enqueued twice: one record per id the producers sent, none other
        assert set(stored) == ids, set(stored) ^ ids
        # 0 lost acknowledged enqueues: every one completed
        assert counts["completed"] == len(ids), counts
        assert all(jobs[i].status == "completed" and jobs[i].result == i for i in ids)
        # 0 steps applied twice: a job ran twice only where its lease expired in between,
        # and no outcome was refused except one reported after such an expiry
        assert set(twice) <= lease_expired, set(twice) - lease_expired
        assert set(rejected) <= lease_expired, set(rejected) - lease_expired
        assert all(runs[i] <= jobs[i].attempts for i in ids)
    finally:
        await direct.close()
