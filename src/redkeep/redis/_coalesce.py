"""Automatic pipelining for the reference transport, on redis-py's public API.

While ``limit`` round trips are in flight, further commands wait in a queue; as soon as one
round trip returns, everything queued leaves as one non-transactional pipeline
(``Redis.pipeline(transaction=False)``), each caller getting its own reply or error. A lone
caller never waits for a batch: its command is sent at once. Under concurrency the per-command
cost of redis-py (packing, the pool checkout, the reply loop) is paid once per batch instead of
once per command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redkeep.errors import BackendUnavailable

__all__ = ["Coalescer"]

_MAX_BATCH = 1000  # commands per pipeline; the rest wait for the next round trip


class Coalescer:
    """Sends commands alone while fewer than ``limit`` round trips are in flight, and in shared
    pipelines otherwise.

    ``single(args)`` runs one command, ``batch(list_of_args)`` one pipeline whose replies (or
    exceptions, in place) come back in order; a batch that raises fails each of its callers
    with that exception.
    """

    def __init__(
        self,
        single: Callable[[Sequence[Any]], Awaitable[Any]],
        batch: Callable[[list[Sequence[Any]]], Awaitable[list[Any]]],
        limit: int,
    ) -> None:
        self._single = single
        self._batch = batch
        self._limit = max(1, limit)
        self._in_flight = 0
        self._queue: list[tuple[Sequence[Any], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, args: Sequence[Any]) -> Any:
        """Run ``args`` and return its reply (an error reply is raised)."""
        if self._in_flight < self._limit and not self._queue:
            self._in_flight += 1
            try:
                return await self._single(args)
            finally:
                self._in_flight -= 1
                self._flush()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((args, fut))
        return await fut

    def _flush(self) -> None:
        while self._queue and self._in_flight < self._limit:
            batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
            self._in_flight += 1
            task = asyncio.ensure_future(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[Sequence[Any], asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                args, fut = batch[0]
                try:
                    result = await self._single(args)
                except Exception as exc:
                    if not fut.done():
                        fut.set_exception(exc)
                else:
                    if not fut.done():
                        fut.set_result(result)
                return
            try:
                replies = await self._batch([args for args, _ in batch])
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                return
            for (_, fut), reply in zip(batch, replies, strict=True):
                if fut.done():
                    continue
                if isinstance(reply, Exception):
                    fut.set_exception(reply)
                else:
                    fut.set_result(reply)
        except BaseException:  # cancelled (client closed): nobody may wait forever
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(BackendUnavailable("redis client is closed"))
            raise
        finally:
            self._in_flight -= 1
            self._flush()

    def cancel(self) -> None:
        """Cancel the batches in flight (their callers get the cancellation as an error)."""
        for task in list(self._tasks):
            task.cancel()
