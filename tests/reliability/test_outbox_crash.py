"""Scenario 11: enqueue outbox across processes. ``kills``: a producing process enqueues 1,000
jobs while its Redis (AOF, ``appendfsync always``) is down, so all are held in the outbox file,
and is SIGKILLed. Redis comes back; the next process relays them (50 per call) and is SIGKILLed
mid-relay, up to three times; a last process relays the rest. Every acknowledged job must then
run exactly once and in the order it was enqueued. Jobs found both in Redis and still in the file
after a kill (a relay cut between its send and its delete, re-sent by the next process) are
counted as ``resent``. ``shared``: three producing processes share one file, enqueueing 200
jobs/s each while Redis is down for their first second and back afterwards; one relays for all,
and each producer's jobs must still run in its order, each exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redkeep.config import Settings
from redkeep.queue import Job
from redkeep.services import Services
from tests.reliability.harness import Deadline, Figures, wait_until
from tests.reliability.jobs import all_finished
from tests.reliability.processes import WorkerProcess

pytestmark = pytest.mark.slow

TITLE = "Enqueue outbox: producer and relays SIGKILLed; processes sharing a file"
JOBS = 1000
RELAY_KILLS = 3
PREFIX = "rel-outbox-crash"
QUEUE = "crash"


def held_in_file(path: Path) -> int:
    """Jobs in the outbox file (0 while it or its tables do not exist yet)."""
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
        try:
            return int(con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
        except sqlite3.OperationalError:  # no such table: being created
            return 0


@pytest.mark.timeout(240)
async def test_killed_producer_and_relays_lose_and_duplicate_nothing(
    redis_server_factory: Callable[..., Any],
    figures: Callable[[str, str], Figures],
    tmp_path: Path,
) -> None:
    fig = figures("outbox_crash", TITLE, part="kills")
    fig.bounds(jobs=JOBS, relay_kills=RELAY_KILLS, relay_batch=50)
    server = redis_server_factory(appendonly=True, appendfsync="always")
    path = tmp_path / "outbox.sqlite3"
    ids_file = tmp_path / "ids.txt"
    args = ["--url", server.url, "--outbox", str(path), "--queue", QUEUE, "--key-prefix", PREFIX]
    module = "tests.reliability.outbox_proc"
    server.kill()

    producer = WorkerProcess("producer", [*args, "--jobs", str(JOBS), "--ids-file",
                             str(ids_file)], tmp_path, module=module)  # fmt: skip
    producer.start()
    producer.wait_ready(120)
    assert f"held {JOBS}" in producer.output(), producer.tail()
    producer.kill()
    ids = ids_file.read_text().split()
    assert len(set(ids)) == JOBS
    assert held_in_file(path) == JOBS

    await asyncio.to_thread(server.start)
    settings = Settings(
        redis_url=server.url, key_prefix=PREFIX, queue_outbox=path, queue_completed_max=10_000,
        breaker_reset_timeout=0.2,
    )  # fmt: skip
    # The checking side opens no outbox of its own until the last step.
    checker = await Services(settings.model_copy(update={"queue_outbox": None})).start()
    queue = checker.queue(QUEUE)

    async def in_redis() -> int:
        counts = await queue.counts()
        return counts["waiting"] + counts["active"] + counts["completed"]

    resent = kills = 0
    for k in range(RELAY_KILLS):
        before = await in_redis()
        if before >= JOBS:
            break
        target = random.randint(before + 1, min(JOBS, before + 300))
        relay = WorkerProcess(f"relay-{k}", [*args, "--relay-batch", "50"], tmp_path,
                              module=module)  # fmt: skip
        relay.start()
        deadline = Deadline(60)
        while await in_redis() < target and relay.alive and not deadline.expired:
            await asyncio.sleep(0.002)
        relay.kill()
        kills += 1
        resent += max(0, held_in_file(path) + await in_redis() - JOBS)
    fig.record(kills=kills + 1, resent=resent, left_for_last=held_in_file(path))

    start = time.monotonic()
    async with Services(settings) as last:
        assert last.outbox is not None
        assert await last.outbox.drained(60), "the last process did not relay the rest"
    fig.record(last_relay_s=round(time.monotonic() - start, 2))

    runs: Counter[str] = Counter()
    order: list[int] = []

    async def record(job: Job) -> None:
        runs[job.id] += 1
        order.append(job.payload["i"])  # one producer: payloads {"p": "0", "i": i}

    worker = checker.worker({"record": record}, queues=[QUEUE], concurrency=1, prefetch=0,
                            handle_signals=False)  # fmt: skip
    runner = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: all_finished(queue, JOBS), timeout=60, what="all jobs run")
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner, 15)
        await checker.close()
    lost = set(ids) - set(runs)
    duplicates = sum(n - 1 for n in runs.values() if n > 1)
    fig.record(
        jobs=JOBS, processed=len(runs), lost=len(lost), duplicates=duplicates,
        unknown=len(set(runs) - set(ids)),
        out_of_order=sum(1 for a, b in itertools.pairwise(order) if b <= a),
    )  # fmt: skip
    assert not lost, f"{len(lost)} held jobs never ran"
    assert duplicates == 0, f"{duplicates} duplicate runs"
    assert set(runs) == set(ids)
    assert order == list(range(JOBS)), "the jobs ran out of enqueue order"


SHARING = 3
SHARED_MAX_JOBS = 5000  # each; they stop earlier, when told (see below)
SHARED_RATE = 200.0
AFTER_CATCH_UP = 1.0  # seconds of direct enqueues after the relay caught up


@pytest.mark.timeout(180)
async def test_processes_sharing_one_file_keep_each_producers_order(
    redis_server_factory: Callable[..., Any],
    figures: Callable[..., Figures],
    tmp_path: Path,
) -> None:
    """Three producing processes share one outbox file and enqueue 200 jobs/s each; Redis is
    down until they have held 50 jobs each and comes back while they go on. One of them relays
    everyone's jobs; the others must keep holding their own until the relay has passed them,
    then enqueue directly again (they stop a second after the outbox first emptied), so that
    every producer's jobs still run in its order, each exactly once."""
    fig = figures("outbox_crash", TITLE, part="shared")
    fig.bounds(processes=SHARING, rate_per_process=SHARED_RATE, after_catch_up_s=AFTER_CATCH_UP)
    server = redis_server_factory(appendonly=True, appendfsync="always")
    path = tmp_path / "outbox.sqlite3"
    base = ["--url", server.url, "--outbox", str(path), "--queue", QUEUE, "--key-prefix", PREFIX,
            "--jobs", str(SHARED_MAX_JOBS), "--rate", str(SHARED_RATE),
            "--stop-file", str(tmp_path / "stop")]  # fmt: skip
    module = "tests.reliability.outbox_proc"
    producers = []
    for p in range(SHARING):
        args = [*base, "--tag", str(p), "--ids-file", str(tmp_path / f"ids-{p}.txt")]
        producers.append(WorkerProcess(f"sharer-{p}", args, tmp_path, module=module))
    server.kill()
    for proc in producers:
        proc.start()
    settings = Settings(redis_url=server.url, key_prefix=PREFIX, queue_completed_max=10_000)
    try:
        # Redis comes back once every producer has held some jobs.
        deadline = Deadline(60)
        while not deadline.expired and held_in_file(path) < SHARING * 50:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(server.start)
        # Caught up once the file was empty: a producer whose breaker is still open holds its
        # next job right after (relayed by the next pass, checked at the end), so do not read again.
        catch_up = Deadline(60)
        caught_up = held_in_file(path) == 0
        while not caught_up and not catch_up.expired:
            await asyncio.sleep(0.02)
            caught_up = held_in_file(path) == 0
        assert caught_up, "the relay did not catch up"
        fig.record(caught_up_s=round(catch_up.elapsed, 2))
        await asyncio.sleep(AFTER_CATCH_UP)
        (tmp_path / "stop").touch()
        for proc in producers:
            proc.wait_ready(120)
        held = sum(int(proc.output().split("held ")[1].split()[0]) for proc in producers)
        deadline = Deadline(60)
        while held_in_file(path) and not deadline.expired:
            await asyncio.sleep(0.05)
        assert held_in_file(path) == 0, "the shared outbox was not relayed"
    finally:
        for proc in producers:
            proc.kill()
    ids = {p: (tmp_path / f"ids-{p}.txt").read_text().split() for p in range(SHARING)}
    checker = await Services(settings).start()
    queue = checker.queue(QUEUE)
    runs: Counter[str] = Counter()
    order: dict[str, list[int]] = {str(p): [] for p in range(SHARING)}

    async def record(job: Job) -> None:
        runs[job.id] += 1
        order[job.payload["p"]].append(job.payload["i"])

    worker = checker.worker({"record": record}, queues=[QUEUE], concurrency=1, prefetch=0,
                            handle_signals=False)  # fmt: skip
    runner = asyncio.create_task(worker.run())
    total = sum(len(p) for p in ids.values())
    try:
        await wait_until(lambda: all_finished(queue, total), timeout=60, what="all jobs run")
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner, 15)
        await checker.close()
    every = {i for p in ids.values() for i in p}
    out_of_order = sum(1 for seq in order.values() for a, b in itertools.pairwise(seq) if b <= a)
    fig.record(
        jobs=total, held=held, lost=len(every - set(runs)),
        duplicates=sum(n - 1 for n in runs.values() if n > 1), out_of_order=out_of_order,
    )  # fmt: skip
    assert len(every) == total
    assert set(runs) == every, "a job was lost or is unknown"
    assert max(runs.values()) == 1, "a job ran twice"
    assert 0 < held < total, "the outage should have held some jobs, not all"
    assert all(order[str(p)] == list(range(len(ids[p]))) for p in range(SHARING))
