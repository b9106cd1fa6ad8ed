"""What the child processes of the reliability scenarios (``*_proc.py``) share: their command
line, running a real :class:`~redkeep.queue.Worker` until SIGTERM, and the entry point."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from redkeep.queue import RedisJobQueue, Worker
from redkeep.redis.mux import MuxClient
from tests.reliability.processes import READY_LINE


def parser() -> argparse.ArgumentParser:
    """The options of every child: ``--url``, ``--queue`` and ``--key-prefix``."""
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--key-prefix", required=True)
    return p


def worker_parser(
    concurrency: int, *, job_seconds: float | None = None, runs_key: bool = False
) -> argparse.ArgumentParser:
    """:func:`parser` plus ``--concurrency`` and ``--lease`` (2 s); ``--job-seconds`` with its
    default when ``job_seconds`` is given, and a required ``--runs-key`` with ``runs_key``."""
    p = parser()
    p.add_argument("--concurrency", type=int, default=concurrency)
    p.add_argument("--lease", type=float, default=2.0)
    if job_seconds is not None:
        p.add_argument("--job-seconds", type=float, default=job_seconds)
    if runs_key:
        p.add_argument("--runs-key", required=True)
    return p


async def run_worker(
    client: MuxClient,
    queue: RedisJobQueue,
    handlers: Mapping[str, Callable[..., Any]],
    args: argparse.Namespace,
    **options: Any,
) -> None:
    """Run a worker for ``handlers`` on ``queue`` (``args.concurrency``, ``args.lease``, a 1 s
    grace period, ``options``) until SIGTERM, printing :data:`READY_LINE` as it starts; then
    close ``client``."""
    worker = Worker(
        queue,
        handlers,
        concurrency=args.concurrency,
        lease=args.lease,
        grace_period=1.0,
        **options,
    )
    print(READY_LINE, flush=True)
    try:
        await worker.run()
    finally:
        await client.close()


def main(
    run: Callable[[argparse.Namespace], Coroutine[Any, Any, None]], p: argparse.ArgumentParser
) -> None:
    """The entry point of a child: warnings logged with their time, ``run`` on the arguments."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run(p.parse_args()))
