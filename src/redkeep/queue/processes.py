"""Child processes for handlers that need a hard timeout (``in_process`` / ``executor="process"``).

Each child is a fresh interpreter (``python -m redkeep.queue.process_child``: spawn, never fork,
so it inherits no event loop, sockets or locks of the worker) that runs one job at a time. What
crosses the boundary, on the child's stdin and stdout as length-prefixed JSON frames (no pickle):

- parent -> child, once: ``{"path": sys.path, "refs": [...]}``; the child imports each handler
  by its ``module:qualname`` and answers ``{"ready": pid}``.
- parent -> child, per job: ``{"ref", "job": {id, name, queue, attempts, ...}, "payload",
  "limit"}``, the payload encoded like a stored job payload;
- child -> parent: ``{"result": <encoded result>}`` or ``{"error": [type, message, traceback]}``.

The handler's own stdout goes to the worker's stderr, so a ``print`` cannot corrupt a frame.
A timeout or a cancellation (job cancelled, lease lost, released at stop) kills the child
(SIGKILL); a child that dies mid-job fails that attempt with ``ProcessDied`` and the exit
status. A new child replaces a lost one on the next job. Children ignore SIGINT and SIGTERM
(the worker decides when they stop) and exit when the worker closes their stdin or dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import struct
import sys
from typing import Any

import orjson

from redkeep.errors import scrub
from redkeep.queue.executors import HandlerFailed
from redkeep.queue.job import Job, JobFailure, encode_value

__all__ = ["HEADER", "JOB_FIELDS", "ProcessPool"]

log = logging.getLogger("redkeep.queue.worker")

HEADER = struct.Struct(">I")
"""Frame header: the length of the JSON body that follows."""
JOB_FIELDS = (
    "id", "name", "queue", "status", "priority", "attempts", "max_attempts", "created_at",
    "started_at", "run_at", "worker_id", "timeout",
)  # fmt: skip
"""Job fields a child's handler sees (besides the payload and headers); the fencing token
stays here."""
START_TIMEOUT = 60.0  # longest wait for a new child to import its handlers
STOP_TIMEOUT = 2.0  # longest wait for an idle child to exit after its stdin is closed
DIED_WAIT = 1.0  # a child that closed its pipe: wait this long for its exit status


class _Child:
    """One child process and its pipes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self.stdin = proc.stdin
        self.stdout = proc.stdout

    async def send(self, message: dict[str, Any]) -> None:
        body = orjson.dumps(message)
        self.stdin.write(HEADER.pack(len(body)) + body)
        await self.stdin.drain()

    async def receive(self) -> dict[str, Any]:
        """The next frame; IncompleteReadError when the child is gone."""
        (size,) = HEADER.unpack(await self.stdout.readexactly(HEADER.size))
        message: dict[str, Any] = orjson.loads(await self.stdout.readexactly(size))
        return message

    async def kill(self, wait_first: float = 0.0) -> int:
        """SIGKILL the child unless it exits within ``wait_first`` seconds; its exit status."""
        if wait_first > 0:
            # A child that is exiting already keeps its own status: Popen.kill() would reap it
            # before asyncio's child watcher and its status would be lost.
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(self.proc.wait()), wait_first)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        return await self.proc.wait()


class ProcessPool:
    """Child processes, each running one job at a time, started on demand and reused (a worker
    runs at most ``concurrency`` jobs at once, so it has at most that many; see the module
    doc)."""

    def __init__(self, max_result_bytes: int) -> None:
        self.max_result_bytes = max_result_bytes
        self.refs: set[str] = set()
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()

    async def run(self, ref: str, job: Job) -> str:
        """Run handler ``ref`` for ``job`` in a child; the encoded result. Raises
        :class:`HandlerFailed` for the handler's error, a timeout or a dead child."""
        self.refs.add(ref)
        request = {
            "ref": ref,
            "job": {**{f: getattr(job, f) for f in JOB_FIELDS}, "headers": dict(job.headers)},
            "payload": encode_value(job.payload, 2**62),
            "limit": self.max_result_bytes,
        }
        child = await self._checkout()
        reusable = False
        try:
            await child.send(request)
            async with asyncio.timeout(job.timeout) as scope:
                reply = await child.receive()
            reusable = True
        except TimeoutError:
            if not scope.expired():
                raise
            status = await child.kill()
            raise HandlerFailed(JobFailure("TimeoutError", (
                f"handler {job.name!r} ran longer than its timeout of {job.timeout:g} s; its "
                f"process (pid {child.proc.pid}) was killed ({_describe(status)})"
            ))) from None  # fmt: skip
        except (asyncio.IncompleteReadError, ConnectionError, orjson.JSONDecodeError):
            status = await child.kill(wait_first=DIED_WAIT)
            log.warning("job %s: the process running handler %r died (%s)",
                        job.id, job.name, _describe(status))  # fmt: skip
            raise HandlerFailed(JobFailure("ProcessDied", (
                f"the process running handler {job.name!r} (pid {child.proc.pid}) died before "
                f"answering: {_describe(status)}"
            ))) from None  # fmt: skip
        except BaseException:  # cancelled: stop the handler for real
            await asyncio.shield(child.kill())
            raise
        finally:
            self._busy.discard(child)
            if reusable:
                self._idle.append(child)
        if "error" in reply:  # scrubbed again: the child does not know the secrets registered here
            kind, message, tb = reply["error"]
            raise HandlerFailed(JobFailure(str(kind), scrub(str(message)), scrub(str(tb))))
        return str(reply["result"])

    async def _checkout(self) -> _Child:
        while self._idle:
            child = self._idle.pop()
            if child.proc.returncode is None:
                self._busy.add(child)
                return child
        child = await self._spawn()
        self._busy.add(child)
        return child

    async def _spawn(self) -> _Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "redkeep.queue.process_child",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        child = _Child(proc)
        try:
            await child.send({"path": sys.path, "refs": sorted(self.refs)})
            async with asyncio.timeout(START_TIMEOUT):
                await child.receive()
        except BaseException as exc:
            exited = isinstance(exc, asyncio.IncompleteReadError | ConnectionError)
            status = await asyncio.shield(child.kill(wait_first=DIED_WAIT if exited else 0.0))
            if isinstance(exc, Exception):
                raise HandlerFailed(JobFailure("ProcessDied", (
                    f"a handler process did not start ({_describe(status)}); its stderr is in "
                    "the worker's log"
                ))) from None  # fmt: skip
            raise
        log.info("started handler process %d (%d running)", proc.pid, len(self._busy) + 1)
        return child

    async def close(self) -> None:
        """Stop the children: idle ones by closing their stdin, the rest by SIGKILL."""
        idle, self._idle = self._idle, []
        busy, self._busy = list(self._busy), set()
        for child in idle:
            child.stdin.close()
        stops = [c.kill(wait_first=STOP_TIMEOUT) for c in idle] + [c.kill() for c in busy]
        await asyncio.gather(*stops, return_exceptions=True)


def _describe(status: int) -> str:
    if status < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-status).name}"
        return f"killed by signal {-status}"
    return f"exit status {status}"
