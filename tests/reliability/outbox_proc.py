"""A producing process for the outbox scenario: ``python -m tests.reliability.outbox_proc``.

With ``--jobs N`` it starts :class:`~redkeep.services.Services` with ``REDKEEP_QUEUE_OUTBOX``
on the given file, enqueues N jobs (payload ``{"p": TAG, "i": i}``) one by one, at ``--rate``
per second when given (stopping early once ``--stop-file`` exists), writes the returned ids to
``--ids-file`` and prints ``held <count of outbox status>``. Without, it only relays, in
batches of ``--relay-batch``. Either way it prints :data:`~tests.reliability.processes.READY_LINE`
and stays up until it is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from redkeep.config import Settings
from redkeep.queue import JobStatus, Outbox
from redkeep.services import Services
from tests.reliability.child import main, parser
from tests.reliability.processes import READY_LINE


async def run(args: argparse.Namespace) -> None:
    settings = Settings(
        redis_url=args.url, key_prefix=args.key_prefix, queue_outbox=args.outbox,
        command_timeout=0.5, connect_timeout=0.5, retry_attempts=0, connect_max_wait=0.5,
        breaker_reset_timeout=0.2,
    )  # fmt: skip
    if args.jobs:
        async with Services(settings) as services:
            queue = services.queue(args.queue)
            jobs = []
            start = time.monotonic()
            stop = Path(args.stop_file) if args.stop_file else None
            for i in range(args.jobs):
                if stop is not None and stop.exists():
                    break
                if args.rate:  # paced: job i is due i / rate seconds after the start
                    await asyncio.sleep(max(0.0, start + i / args.rate - time.monotonic()))
                jobs.append(await queue.enqueue("record", {"p": args.tag, "i": i}))
            Path(args.ids_file).write_text("\n".join(j.id for j in jobs))
            print("held", sum(j.status == JobStatus.OUTBOX for j in jobs), flush=True)
            print(READY_LINE, flush=True)
            await asyncio.Event().wait()  # until SIGKILL, relaying meanwhile
    # A relaying process: the outbox is built by hand to relay in small batches.
    plain = settings.model_copy(update={"queue_outbox": None})
    async with Services(plain) as services:
        outbox = Outbox.from_settings(settings, queue_factory=services.queue)
        outbox.relay_batch = args.relay_batch
        async with outbox:
            print(READY_LINE, flush=True)
            await asyncio.Event().wait()  # until SIGKILL


def outbox_parser() -> argparse.ArgumentParser:
    p = parser()
    p.add_argument("--outbox", required=True)
    p.add_argument("--jobs", type=int, default=0)
    p.add_argument("--ids-file", default="")
    p.add_argument("--rate", type=float, default=0.0, help="jobs/s (0: as fast as possible)")
    p.add_argument("--tag", default="0", help="the producer's name, in every payload")
    p.add_argument("--stop-file", default="", help="stop enqueueing once this file exists")
    p.add_argument("--relay-batch", type=int, default=500)
    return p


if __name__ == "__main__":
    main(run, outbox_parser())
