"""Scenario: failover to a replica right after a burst of enqueues, with and without
replica-acknowledged writes (``REDKEEP_QUEUE_MIN_REPLICAS``).

Redis replicates asynchronously: an enqueue or a worker's step returns once the primary has it, and
replicas receive it a moment later. A failover loses every write that the promoted replica had not
received: on a healthy local link the last fraction of a millisecond of writes, but everything since
the replica fell behind when it lags or its link is broken (the primary goes on accepting writes
until ``repl-timeout``, 60 s by default, unless ``min-replicas-to-write`` stops it). With
``REDKEEP_QUEUE_MIN_REPLICAS=1`` each enqueue and step returns only after ``WAIT`` confirms a
replica has it, so a failover to that replica loses none of them, and calls fail with
ReplicationTimeout after ``REDKEEP_QUEUE_REPLICA_TIMEOUT`` while no replica confirms (enqueue again
with the same job id; workers re-send their step). The price is one replica round trip per call, on
a connection of its own: bench/replicas_bench.py measured single enqueues from 50 coroutines at
about 0.4x, batches of 100 and worker drains at 0.84-1.2x (loopback, shared 2-core machine;
docs/queue.md has the table). Here a private primary has one replica whose replication link goes
through a loopback relay. Four producers enqueue jobs with known ids while a worker processes them;
after the first jobs the link is cut (the relay drops the bytes it holds, as a broken network does);
producers go on for a moment; the primary is SIGKILLed and the replica promoted (``REPLICAOF NO
ONE``). Every enqueue that returned, and every completion a worker step had reported successfully,
is then looked up on the promoted replica. ``acknowledged`` (the option on): none lost; the enqueues
that timed out are enqueued again on the new primary and each job then exists once. ``plain`` (the
option off): the enqueues acknowledged after the cut are lost (``lost_without_option``), and so are
the completions reported after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from redkeep.errors import BackendError, ReplicationTimeout
from redkeep.queue import Job, RedisJobQueue, Worker
from redkeep.queue.protocol import StepRequest, StepResult
from redkeep.redis.mux import MuxClient
from tests.reliability.harness import Deadline, Figures, scale
from tests.support.proxy import FaultProxy
from tests.support.redis_server import HOST, RedisServer

pytestmark = pytest.mark.slow

BEFORE_CUT = scale(400, 3000)  # jobs acknowledged before the link is cut
AFTER_CUT_S = scale(0.6, 1.5)  # producers go on this long before the primary is killed
PRODUCERS = 4
REPLICA_TIMEOUT = 0.25
WINDOW = scale(30.0, 90.0)


async def _job_states(client: MuxClient, queue: RedisJobQueue, ids: list[str]) -> dict[str, str]:
    """``{id: status}`` of the jobs among ``ids`` that ``client``'s server holds."""
    out: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        records = await client.execute("HMGET", queue.keys.state, *chunk)
        out.update({i: str(r).split("|", 1)[0] for i, r in zip(chunk, records, strict=True) if r})
    return out


@pytest.mark.timeout(WINDOW + 60)
@pytest.mark.parametrize("mode", ["acknowledged", "plain"])
async def test_failover_after_a_burst_loses_no_acknowledged_job(
    mode: str,
    redis_server_factory: Callable[..., RedisServer],
    figures: Callable[..., Figures],
) -> None:
    fig = figures("replica_failover", "Primary SIGKILLed after a burst, replica promoted", mode)
    replicas = 1 if mode == "acknowledged" else 0
    fig.bounds(
        before_cut=BEFORE_CUT, after_cut_s=AFTER_CUT_S, producers=PRODUCERS,
        min_replicas=replicas, replica_timeout_s=REPLICA_TIMEOUT,
    )  # fmt: skip
    primary = redis_server_factory(extra_args=["--repl-diskless-sync-delay", "0"])
    link = FaultProxy(primary.port, raw=True)
    replica = redis_server_factory(extra_args=["--replicaof", HOST, str(link.port)])
    deadline = Deadline(10)
    while "state=online" not in primary.cli("INFO", "replication"):
        assert not deadline.expired, "the replica did not sync"
        await asyncio.sleep(0.05)

    def queue_on(client: MuxClient, n: int) -> RedisJobQueue:
        return RedisJobQueue(
            client, "failover", key_prefix=f"rel-{mode}", min_replicas=n,
            replica_timeout=REPLICA_TIMEOUT,
        )  # fmt: skip

    options: dict[str, Any] = {"command_timeout": 1.0, "connect_timeout": 0.5, "retry_attempts": 0}
    client, worker_client = MuxClient(primary.url, **options), MuxClient(primary.url, **options)
    promoted = MuxClient(replica.url, **options)
    fig.meta(redis_version=(await client.info("server"))["redis_version"])
    queue, worker_queue = queue_on(client, replicas), queue_on(worker_client, replicas)

    acknowledged: list[str] = []
    after_cut: list[str] = []  # acknowledged after the link was cut (give or take a few)
    unconfirmed: list[str] = []  # ReplicationTimeout: on the primary, not confirmed
    failed: list[str] = []  # the primary was gone
    completed: set[str] = set()  # completions reported by a step that returned
    cut = killed = False

    async def produce(p: int) -> None:
        for i in range(1_000_000):
            if killed or window.expired:
                return
            job_id = f"{mode}-{p}-{i}"
            try:
                await queue.enqueue("job", {"i": i}, job_id=job_id)
            except ReplicationTimeout:
                unconfirmed.append(job_id)
            except BackendError:
                failed.append(job_id)
                await asyncio.sleep(0.01)
            else:
                acknowledged.append(job_id)
                if cut:
                    after_cut.append(job_id)

    real_step = worker_queue.step

    async def step(request: StepRequest) -> StepResult:  # the real step, recorded
        result = await real_step(request)
        completed.update(o.job_id for o in request.outcomes if o.kind == "done")
        return result

    worker_queue.step = step  # type: ignore[method-assign]

    async def handler(job: Job) -> None:
        return None

    worker = Worker(worker_queue, {"job": handler}, concurrency=10, handle_signals=False)
    running = asyncio.create_task(worker.run())
    window = Deadline(WINDOW)
    producers = [asyncio.create_task(produce(p)) for p in range(PRODUCERS)]
    try:
        while len(acknowledged) < BEFORE_CUT:
            assert not window.expired, f"only {len(acknowledged)} enqueues before the window ended"
            await asyncio.sleep(0.005)
        link.refusing = True  # the replica cannot reconnect
        link.cut_all()
        cut = True
        await asyncio.sleep(AFTER_CUT_S)
        primary.kill()
        killed = True
        replica.cli("REPLICAOF", "NO", "ONE")
        await asyncio.gather(*producers)
    finally:
        killed = True
        running.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(running, 15)
        link.close()
        await client.close()
        await worker_client.close()

    try:
        survivors = queue_on(promoted, 0)
        ids = sorted({*acknowledged, *unconfirmed, *failed, *completed})
        found = await _job_states(promoted, survivors, ids)
        lost = [i for i in acknowledged if i not in found]
        lost_completions = [i for i in completed if found.get(i) != "completed"]
        fig.record(
            jobs=len(acknowledged) + len(unconfirmed) + len(failed),
            acknowledged=len(acknowledged),
            acknowledged_after_cut=len(after_cut),
            not_confirmed=len(unconfirmed),
            failed_after_kill=len(failed),
            completions_reported=len(completed),
        )
        if mode == "plain":
            fig.record(
                lost_without_option=len(lost), lost_completions_without_option=len(lost_completions)
            )
            # The scenario produces the loss it measures (the enqueues acknowledged once the cut
            # took effect never reached the replica).
            assert lost, f"nothing lost without the option ({len(after_cut)} after the cut)"
            return
        fig.record(lost=len(lost), lost_completions=len(lost_completions))
        assert not lost, f"{len(lost)} acknowledged enqueues lost: {lost[:5]}"
        assert not lost_completions, f"{len(lost_completions)} completions lost"
        assert unconfirmed, "no enqueue felt the cut: the scenario did not test anything"
        # The caller's retry of the unconfirmed enqueues on the new primary: each job once.
        retried = [await survivors.enqueue("job", job_id=i) for i in unconfirmed + failed]
        assert [j.id for j in retried] == unconfirmed + failed
        counts = await survivors.counts()
        assert sum(counts.values()) == len(ids), (counts, len(ids))
        fig.record(retried=len(retried), jobs_after_retry=sum(counts.values()))
    finally:
        await promoted.close()
