"""Fan-out 1,000 -> fan-in, with a worker process SIGKILLed twice while the 1,000 parts run
(docs/flows.md): every part completes, and the fan-in job runs exactly once, with all 1,000
results. Workers are real processes (``tests/reliability/fanin_proc.py``) on the shared Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from redkeep.queue import JobSpec, JobStatus, RedisJobQueue
from redkeep.redis.mux import MuxClient
from tests.reliability.harness import wait_until
from tests.reliability.processes import WorkerProcess

PARTS = 1000


@pytest.mark.timeout(180)
async def test_fan_in_runs_once_with_every_result_when_workers_die(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    client = MuxClient(redis_url)
    queue = RedisJobQueue(client, "fanin", key_prefix=prefix)
    runs_key = f"{prefix}:runs"
    flow = await queue.group(
        [JobSpec("part", i, max_attempts=100) for i in range(PARTS)],
        then=JobSpec("fanin", job_id="the-fan-in"),
    )
    args = [
        "--url", redis_url, "--queue", "fanin", "--key-prefix", prefix, "--runs-key", runs_key,
        "--concurrency", "20", "--lease", "1.5", "--job-seconds", "0.3",
    ]  # fmt: skip
    workers = [
        WorkerProcess(f"w{i}", args, tmp_path, module="tests.reliability.fanin_proc")
        for i in range(2)
    ]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_ready()

        async def completed_at_least(n: int) -> bool:
            return (await queue.counts())["completed"] >= n

        for victim, after in ((workers[0], 150), (workers[1], 450)):
            await wait_until(
                lambda after=after: completed_at_least(after), timeout=60, interval=0.05,
                what=f"{after} parts completed",
            )  # fmt: skip
            fan_in = await queue.get_job("the-fan-in")
            assert fan_in is not None and fan_in.status == JobStatus.BLOCKED
            victim.kill()  # SIGKILL while it holds 20 parts
            victim.start()
            victim.wait_ready()
        last = await flow.wait(timeout=90)
    finally:
        for w in workers:
            w.stop(timeout=5.0)
    assert sum(w.kills for w in workers) == 2
    assert last.status == JobStatus.COMPLETED, last.error
    assert last.result == {"n": PARTS, "sum": sum(2 * i for i in range(PARTS)), "none": 0}
    assert int(await client.execute("HGET", runs_key, "the-fan-in")) == 1  # exactly once
    assert int(await client.execute("HLEN", runs_key)) == PARTS + 1  # every part ran
    assert (await queue.counts())["completed"] == PARTS + 1
    await client.close()
