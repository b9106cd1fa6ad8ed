"""jobs recovered from expired leases reach the service's metrics: a worker process is SIGKILLed
mid-job and the service's embedded worker requeues and finishes the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tests.web.server import TOKEN, ServerThread, redis_settings

from redkeep.examples import handlers

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def test_recovered_jobs_are_counted(
    serve: Callable[..., ServerThread], redis_url: str, prefix: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDKEEP_")}
    env.update(
        REDKEEP_REDIS_URL=redis_url,
        REDKEEP_KEY_PREFIX=prefix,
        REDKEEP_QUEUE_LEASE="1",
        REDKEEP_QUEUE_GRACE_PERIOD="0.5",
    )
    # 1. A service without a worker takes the job; a worker process claims it.
    idle = serve(redis_settings(redis_url, prefix, queue_lease=1.0, queue_grace_period=0.5))
    worker = subprocess.Popen(
        [sys.executable, "-m", "redkeep", "worker", "redkeep.examples:handlers"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=idle.url, headers=AUTH, timeout=10) as c:
            body = {"name": "sleep", "payload": {"seconds": 2}, "max_attempts": 3}
            job = c.post("/v1/queues/default/jobs", json=body).json()
            deadline = time.monotonic() + 20
            while c.get(f"/v1/queues/default/jobs/{job['id']}").json()["worker_id"] is None:
                assert time.monotonic() < deadline, "the worker process never claimed the job"
                time.sleep(0.02)
        # 2. The worker dies mid-job (no chance to release it).
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    # 3. A service with an embedded worker recovers the expired lease and completes the job.
    busy = serve(
        redis_settings(redis_url, prefix, queue_lease=1.0, queue_grace_period=0.5), handlers
    )
    with httpx.Client(base_url=busy.url, headers=AUTH, timeout=10) as c:
        deadline = time.monotonic() + 20
        while (got := c.get(f"/v1/queues/default/jobs/{job['id']}").json())["status"] != (
            "completed"
        ):
            assert time.monotonic() < deadline, got
            time.sleep(0.05)
        assert got["attempts"] == 2
        text = c.get("/metrics").text
    assert metric(text, "redkeep_jobs_recovered_total", queue="default") == 1
