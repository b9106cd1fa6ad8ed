"""Flows benchmark (not a test): creating a 10,000-job group vs plain bulk enqueue, and the
end-to-end cost of a fan-in, in the same run (docs/flows.md, docs/benchmarks.md)::

    .venv/bin/python bench/flows_bench.py

Against a private redis-server, interleaved rounds (medians):

- create: ``enqueue_many`` of N plain jobs vs ``group`` of N jobs + a ``then`` job (one script
  call for the whole flow): jobs written per second;
- end to end: N plain jobs vs a group of N jobs + its fan-in job, from the first enqueue until
  the last job completed, with one in-process Worker (no-op handlers, concurrency 50).

Env: ``REDKEEP_BENCH_N`` jobs per case (default 10000), ``REDKEEP_BENCH_ROUNDS`` (default 3).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

from _common import drain, private_redis

from redkeep.queue import Job, JobSpec, RedisJobQueue
from redkeep.redis.mux import MuxClient

N = int(os.environ.get("REDKEEP_BENCH_N", "10000"))
ROUNDS = int(os.environ.get("REDKEEP_BENCH_ROUNDS", "3"))


async def _noop(job: Job) -> Any:
    return 1


async def _fanin(job: Job) -> Any:
    return len(job.parent_results or {})


HANDLERS = {"noop": _noop, "fanin": _fanin}


async def run(url: str) -> dict[str, list[float]]:
    client = MuxClient(url)
    out: dict[str, list[float]] = {}
    try:
        for rnd in range(ROUNDS):
            plain_q = RedisJobQueue(client, f"bench-flow-plain-{rnd}")
            group_q = RedisJobQueue(client, f"bench-flow-group-{rnd}")
            t0 = time.perf_counter()
            await plain_q.enqueue_many(JobSpec("noop", i) for i in range(N))
            out.setdefault("create: enqueue_many", []).append(N / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            flow = await group_q.group(
                [JobSpec("noop", i) for i in range(N)], then=JobSpec("fanin")
            )
            out.setdefault("create: group + then", []).append((N + 1) / (time.perf_counter() - t0))
            e2e_plain = RedisJobQueue(client, f"bench-flow-e2e-plain-{rnd}")
            t0 = time.perf_counter()
            await e2e_plain.enqueue_many(JobSpec("noop", i) for i in range(N))
            await drain(e2e_plain, HANDLERS, total=N)
            out.setdefault("e2e: N plain jobs (s)", []).append(time.perf_counter() - t0)
            e2e_group = RedisJobQueue(client, f"bench-flow-e2e-group-{rnd}")
            t0 = time.perf_counter()
            flow = await e2e_group.group(
                [JobSpec("noop", i) for i in range(N)], then=JobSpec("fanin")
            )
            await drain(e2e_group, HANDLERS, last_id=flow.last.id)
            done = await e2e_group.get_job(flow.last.id)
            assert done is not None and done.result == N, done
            out.setdefault("e2e: group of N + fan-in (s)", []).append(time.perf_counter() - t0)
    finally:
        await client.close()
    return out


def main() -> None:
    with private_redis("rk-flows-") as (url, _):
        results = asyncio.run(run(url))
        med = {case: statistics.median(v) for case, v in results.items()}
        print(f"N={N}, {ROUNDS} rounds, medians")
        for case, value in med.items():
            unit = "" if "(s)" in case else " jobs/s"
            print(f"  {case:<32} {value:10.2f}{unit}")
        create = med["create: group + then"] / med["create: enqueue_many"]
        e2e = med["e2e: group of N + fan-in (s)"] / med["e2e: N plain jobs (s)"]
        print(f"  group creation vs enqueue_many: x{create:.2f}; fan-in end to end: x{e2e:.2f}")


if __name__ == "__main__":
    main()
