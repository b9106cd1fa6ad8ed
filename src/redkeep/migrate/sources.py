"""Where a migration reads from: live stores (Redis, Upstash, in-process), snapshots, services.

Every source yields :class:`~redkeep.migrate.snapshot.Line` objects: a record, or the error that
made one unusable (with its line number for snapshot files; 0 for live stores).
"""

from __future__ import annotations

import abc
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from redkeep.cache.base import CacheService
from redkeep.cache.redis import RedisCache
from redkeep.errors import BackendAuthError, BackendError, BackendUnavailable, scrub
from redkeep.migrate.redis_read import redis_cache_lines
from redkeep.migrate.snapshot import (
    CacheRecord,
    JobRecord,
    Line,
    Record,
    SnapshotError,
    read_snapshot,
)
from redkeep.queue.base import JobQueue
from redkeep.serialization import Serializer

__all__ = [
    "ServiceSource",
    "SnapshotSource",
    "Source",
    "StoreSource",
    "iter_store_records",
]


class Source(abc.ABC):
    """A stream of migration records."""

    display: str = "source"

    @abc.abstractmethod
    def lines(self) -> AsyncIterator[Line]:
        """Every record (or bad line) of the source."""

    async def prepare(self) -> None:
        """Fetch what the source needs before :meth:`lines` (e.g. download an export)."""
        return None

    async def validate(self) -> tuple[int, list[Line]]:
        """Check every record without applying anything: (record count, bad lines).

        Live stores are not pre-read (their records are produced by the code that wrote them);
        they return ``(-1, [])`` and report a bad record when the copy reaches it.
        """
        return -1, []

    async def close(self) -> None:
        """Release connections or temporary files."""
        return None


async def iter_store_records(
    caches: Mapping[str, CacheService], queues: Mapping[str, JobQueue]
) -> AsyncIterator[Record]:
    """Every entry of ``caches`` and every job of ``queues`` as snapshot records."""
    for name, cache in caches.items():
        async for key, value, remaining in cache.items():
            expires = None if remaining is None else time.time() + remaining
            yield CacheRecord(name, key, value, expires)
    for name, queue in queues.items():
        async for job in queue.dump_jobs():
            yield JobRecord(name, job)


class StoreSource(Source):
    """Caches and queues reachable as objects (a Redis prefix, or a process's memory stores).

    ``open_stores`` is called once and returns the caches and queues to read, by name; it is
    where a Redis source lists the names it finds under its key prefix.
    """

    def __init__(
        self,
        open_stores: Callable[
            [], Awaitable[tuple[Mapping[str, CacheService], Mapping[str, JobQueue]]]
        ],
        display: str,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._open = open_stores
        self._stores: tuple[Mapping[str, CacheService], Mapping[str, JobQueue]] | None = None
        self._on_close = on_close
        self.display = display

    async def prepare(self) -> None:
        if self._stores is None:
            self._stores = await self._open()

    async def lines(self) -> AsyncIterator[Line]:
        await self.prepare()
        assert self._stores is not None
        caches, queues = self._stores
        for name, cache in caches.items():
            if isinstance(cache, RedisCache):
                async for line in redis_cache_lines(name, cache):
                    yield line
            else:
                async for record in iter_store_records({name: cache}, {}):
                    yield Line(0, record=record)
        for name, queue in queues.items():
            async for job in queue.dump_jobs():
                problem = getattr(job, "payload_error", None)
                if problem:  # restoring it would silently replace the payload with None
                    where = f"queue {name!r} job {job.id!r}"
                    yield Line(0, error=SnapshotError(0, f"payload: {problem}", where))
                else:
                    yield Line(0, record=JobRecord(name, job))

    async def close(self) -> None:
        if self._on_close is not None:
            await self._on_close()


class SnapshotSource(Source):
    """A JSON Lines snapshot file (see :mod:`redkeep.migrate.snapshot`)."""

    def __init__(self, path: str | Path, serializer: Serializer | None = None) -> None:
        self.path = Path(path)
        self.display = f"snapshot {self.path}"
        self._serializer = serializer

    def _open(self) -> Any:
        try:
            return self.path.open("rb")
        except OSError as exc:
            raise BackendUnavailable(f"cannot read snapshot {self.path}: {exc.strerror}") from None

    async def validate(self) -> tuple[int, list[Line]]:
        bad: list[Line] = []
        count = 0
        with self._open() as fh:
            for line in read_snapshot(fh, self._serializer, name=str(self.path)):
                if line.error is not None:
                    bad.append(line)
                else:
                    count += 1
        return count, bad

    async def lines(self) -> AsyncIterator[Line]:
        with self._open() as fh:
            for line in read_snapshot(fh, self._serializer, name=str(self.path)):
                yield line


class ServiceSource(SnapshotSource):
    """A running redkeep service: its ``GET /v1/export`` is downloaded to a temporary file.

    Downloading first lets a bad record abort the run before anything is written, and keeps
    the service's memory stores untouched by a slow target.
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        serializer: Serializer | None = None,
        transport: Any = None,
    ) -> None:
        self._tmpdir = tempfile.TemporaryDirectory(prefix="redkeep-export-")
        super().__init__(Path(self._tmpdir.name) / "export.jsonl", serializer)
        self.url = url.rstrip("/")
        self.display = f"service {self.url}"
        self._token = token
        self._timeout = timeout
        self._transport = transport
        self._fetched = False

    async def prepare(self) -> None:
        if self._fetched:
            return
        import httpx

        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        export = f"{self.url}/v1/export"
        try:
            async with (
                httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as http,
                http.stream("GET", export, headers=headers) as resp,
            ):
                if resp.status_code in (401, 403):
                    raise BackendAuthError(
                        f"{export} refused the request ({resp.status_code}): "
                        "pass the service's API token with --from-token"
                    )
                if resp.status_code != 200:
                    body = (await resp.aread())[:200].decode("utf-8", "replace")
                    raise BackendError(f"{export} answered {resp.status_code}: {scrub(body)}")
                with self.path.open("wb") as fh:
                    async for chunk in resp.aiter_bytes():
                        fh.write(chunk)
        except httpx.TimeoutException:
            raise BackendUnavailable(f"{export} timed out") from None
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"cannot reach {export}: {scrub(str(exc))}") from None
        self._fetched = True

    async def validate(self) -> tuple[int, list[Line]]:
        await self.prepare()
        return await super().validate()

    async def lines(self) -> AsyncIterator[Line]:
        await self.prepare()
        async for line in super().lines():
            yield line

    async def close(self) -> None:
        self._tmpdir.cleanup()
