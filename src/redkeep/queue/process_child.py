"""A worker's handler process: ``python -m redkeep.queue.process_child`` (started by
:class:`redkeep.queue.processes.ProcessPool`; the protocol is described there).

Reads length-prefixed JSON requests on stdin, runs one job at a time and answers on stdout.
The handlers' own output on stdout goes to stderr instead. Exits when stdin closes or the
worker process that started it is gone.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

import orjson

from redkeep.queue.execution import failure_from
from redkeep.queue.job import JobStatus, decode_value, encode_value, make_job
from redkeep.queue.processes import HEADER

PARENT_CHECK_INTERVAL = 1.0


def _receive(stream: IO[bytes]) -> dict[str, Any] | None:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    message: dict[str, Any] = orjson.loads(stream.read(size))
    return message


def _send(stream: IO[bytes], message: dict[str, Any]) -> None:
    body = orjson.dumps(message)
    stream.write(HEADER.pack(len(body)) + body)
    stream.flush()


def _resolve(ref: str) -> Callable[..., Any]:
    module, _, qualname = ref.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not callable(found):
        raise TypeError(f"{ref} is not callable")
    return found  # type: ignore[no-any-return]


def _watch_parent(parent: int) -> None:
    """Exit when the worker is gone (SIGKILL, crash): never outlive it with a stuck job."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_INTERVAL)
    os._exit(1)


async def _await(value: Any) -> Any:
    return await value


def _run(handlers: dict[str, Callable[..., Any] | BaseException], request: dict[str, Any]) -> Any:
    try:
        handler = handlers.get(request["ref"])
        if handler is None:
            handler = handlers[request["ref"]] = _resolve(request["ref"])
        if isinstance(handler, BaseException):
            raise handler
        fields = request["job"]
        fields["status"] = JobStatus(fields["status"])
        job = make_job(**fields, payload=decode_value(request["payload"]))
        result = handler(job)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return {"result": encode_value(result, int(request["limit"]), "result")}
    except Exception as exc:
        failure = failure_from(exc)
        return {"error": [failure.type, failure.message, failure.traceback]}


def main() -> None:
    """Serve requests until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when its children stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # print() in a handler goes to the worker's stderr, not into a frame
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    init = _receive(requests)
    if init is None:
        return
    sys.path[:] = [str(p) for p in init["path"]]
    handlers: dict[str, Callable[..., Any] | BaseException] = {}
    for ref in init["refs"]:
        try:
            handlers[ref] = _resolve(ref)
        except Exception as exc:  # reported with each job that needs it
            handlers[ref] = exc
    _send(replies, {"ready": os.getpid()})
    while (request := _receive(requests)) is not None:
        _send(replies, _run(handlers, request))


if __name__ == "__main__":
    main()
