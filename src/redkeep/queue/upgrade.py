"""Conversion of a queue written by redkeep 0.1 (layout 1) to layout 2, done automatically.

Layout 1 kept one hash per job (``{P:q:Q}:job:<id>``), which scripts built from the job id; its
payloads and results were plain JSON. A :class:`~redkeep.queue.redis.RedisJobQueue` checks
for layout-1 keys of its queue before its first operation (one ``EXISTS``) and converts what it
finds; a worker checks again every minute, for jobs that a redkeep 0.1 process still running
adds. Any number of processes may convert the same queue at once: each batch is one script
that converts a job only if its old hash is still there and unchanged since it was read (see
``scripts/upgrade.lua``), so every job is converted exactly once.

Payloads and results are decoded as the plain JSON they were and encoded again with the exact
serializer, so they read back as the same values (a dict that happened to use the serializer's
tag key included). A field that does not decode is kept as it was and reported by the job's
``payload_error``, as for any damaged record. Waiting jobs keep their order; jobs that were
active keep their lease and token, so the outcome a redkeep 0.1 worker reports for one is
refused and the job runs again once its lease expires (at least once, as always).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from redkeep.errors import BackendResponseError, SerializationError
from redkeep.queue import scripts
from redkeep.queue.codec import encode_data, encode_state
from redkeep.queue.job import STATUSES, serializer_for
from redkeep.queue.keys import V1Keys

if TYPE_CHECKING:
    from redkeep.queue.redis import RedisJobQueue

__all__ = ["UPGRADE_CHECK_INTERVAL", "UpgradeReport", "has_layout1", "upgrade_layout1"]

log = logging.getLogger("redkeep.queue.upgrade")

UPGRADE_CHECK_INTERVAL = 60.0
BATCH = 100
MAX_PASSES = 50  # a pass re-reads jobs that changed while they were being converted


@dataclass
class UpgradeReport:
    """What one :func:`upgrade_layout1` call did."""

    converted: int = 0
    dropped: int = 0
    """Entries of a layout-1 status set without a job hash (nothing to convert)."""


async def has_layout1(queue: RedisJobQueue) -> bool:
    """True when layout-1 keys of ``queue`` exist (one ``EXISTS`` call)."""
    v1 = V1Keys(queue.key_prefix, queue.name)
    found = await queue.client.exists(*(v1.status_key(s) for s in STATUSES), v1.seq)
    return found > 0


async def upgrade_layout1(queue: RedisJobQueue) -> UpgradeReport:
    """Convert every layout-1 job of ``queue`` to layout 2, then delete layout-1 leftovers."""
    v1 = V1Keys(queue.key_prefix, queue.name)
    client = queue.client
    report = UpgradeReport()
    seq = await client.get(v1.seq)
    for status in STATUSES:
        zkey = v1.status_key(status)
        for _ in range(MAX_PASSES):
            entries = await client.zrange(zkey, 0, BATCH - 1, withscores=True)
            if not entries:
                break
            converted, changed = await _convert(queue, v1, zkey, entries, seq or "", report)
            report.converted += converted
            if changed == len(entries):
                log.info("queue %s: layout-1 jobs kept changing; retrying", queue.name)
    leftovers = v1.others()
    async for key in client.scan_iter(v1.inbox_pattern):
        leftovers.append(key)
    if not await client.exists(*(v1.status_key(s) for s in STATUSES)):
        await client.delete(*leftovers)
    log.info(
        "queue %s: converted %d job(s) from redkeep 0.1's layout", queue.name, report.converted
    )
    return report


async def _convert(
    queue: RedisJobQueue,
    v1: V1Keys,
    zkey: str,
    entries: list[tuple[str, float]],
    seq: str,
    report: UpgradeReport,
) -> tuple[int, int]:
    client = queue.client
    hashes = await client.pipeline([("HGETALL", v1.job(str(m))) for m, _ in entries])
    keys = [*queue.keys.names(scripts.UPGRADE.keys[:-1]), zkey]
    args: list[Any] = [seq]
    foreign: list[str] = []
    for (member, score), h in zip(entries, hashes, strict=True):
        job_id = str(member)
        if isinstance(h, BackendResponseError):  # not a hash: not a job, leave the key alone
            foreign.append(job_id)
            continue
        fields = _as_dict(h)
        if not fields:
            report.dropped += 1
        keys.append(v1.job(job_id))
        args += [job_id, f"{fields.get('status', '')}|{fields.get('token', '')}",
                 *_records(queue, job_id, fields), repr(score)]  # fmt: skip
    if foreign:
        await client.zrem(zkey, *foreign)
    if len(keys) == len(scripts.UPGRADE.keys):
        return 0, 0
    reply = await client.evalsha(scripts.UPGRADE, keys, args)
    return int(reply[0]), int(reply[1])


def _as_dict(reply: Any) -> dict[str, str]:
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    it = iter(reply or [])
    return {str(k): str(v) for k, v in zip(it, it, strict=True)}


def _records(queue: RedisJobQueue, job_id: str, h: dict[str, str]) -> list[str]:
    """Layout-2 ``state, data, result, error`` of a layout-1 job hash."""

    def num(name: str, default: int) -> int:
        try:
            return int(h.get(name) or default)
        except ValueError:
            return default

    def opt(name: str) -> int | None:
        value = h.get(name)
        return int(value) if value and value.isdigit() else None

    status = h.get("status", "")
    state = encode_state(
        status if status in STATUSES else "failed",
        num("attempts", 0),
        num("token", 0),
        num("priority", 0),
        max(1, num("max_attempts", 1)),
        opt("created"),
        opt("run_at"),
        opt("started"),
        opt("finished"),
        (h.get("worker") or "").replace("|", "/").replace("\n", " "),
    )
    timeout: float | None
    try:
        timeout = float(h["timeout"]) if h.get("timeout") else None
    except ValueError:
        timeout = None
    backoff = h.get("backoff") or ""
    try:
        if backoff and not isinstance(orjson.loads(backoff), list):
            backoff = ""
    except orjson.JSONDecodeError:
        backoff = ""
    dumps = serializer_for(queue.max_payload_bytes).dumps
    data = encode_data(job_id, h.get("name", ""), timeout, backoff, _exact(h.get("payload"), dumps))
    result = _exact(h.get("result"), dumps) if h.get("result") else ""
    return [state, data, result, h.get("error", "")]


def _exact(text: str | None, dumps: Any) -> str:
    """Plain JSON text written by redkeep 0.1, encoded again by the exact serializer (kept as
    it was when it does not decode, so that reading it reports the problem)."""
    if not text:
        return "null"
    try:
        return str(dumps(orjson.loads(text)))
    except (orjson.JSONDecodeError, SerializationError):
        return text
