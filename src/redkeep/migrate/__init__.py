"""Copy caches and jobs between backends: Redis, Upstash, Cluster, snapshots, running services.

``redkeep migrate --from SOURCE --to TARGET`` is the command line; :func:`migrate` the API.
See docs/migration.md for the guide and :mod:`redkeep.migrate.snapshot` for the file format.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from redkeep.cache.base import CacheService
from redkeep.migrate.endpoints import Endpoint, parse_endpoint
from redkeep.migrate.open import open_source, open_target
from redkeep.migrate.runner import MigrationAborted, MigrationReport, Tally, migrate
from redkeep.migrate.snapshot import CacheRecord, JobRecord, SnapshotError
from redkeep.migrate.sources import ServiceSource, SnapshotSource, Source, StoreSource
from redkeep.migrate.targets import SnapshotTarget, StoreTarget, Target
from redkeep.queue.base import JobQueue

__all__ = [
    "CacheRecord",
    "Endpoint",
    "JobRecord",
    "MigrationAborted",
    "MigrationReport",
    "ServiceSource",
    "SnapshotError",
    "SnapshotSource",
    "SnapshotTarget",
    "Source",
    "StoreSource",
    "StoreTarget",
    "Tally",
    "Target",
    "migrate",
    "open_source",
    "open_target",
    "parse_endpoint",
    "write_snapshot",
]


async def write_snapshot(
    path: str | Path,
    caches: Mapping[str, CacheService],
    queues: Mapping[str, JobQueue],
) -> MigrationReport:
    """Write every entry of ``caches`` and job of ``queues`` to a snapshot file at ``path``.

    Use it to keep the state of memory backends across a restart (for example at shutdown):
    ``redkeep migrate --from PATH --to redis://...`` loads it later. The file appears
    atomically, complete or not at all.
    """

    async def stores() -> tuple[Mapping[str, CacheService], Mapping[str, JobQueue]]:
        return caches, queues

    source = StoreSource(stores, "memory stores")
    target = SnapshotTarget(path)
    try:
        return await migrate(source, target)
    finally:
        await target.close()
