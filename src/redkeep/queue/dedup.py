"""Deduplication and debounce of enqueues: ``enqueue(..., dedup_key=, dedup_ttl=, debounce=)``.

- **Deduplication**: while the job last enqueued with a dedup key is unfinished (waiting,
  delayed or active), or for ``dedup_ttl`` seconds after it was enqueued, another enqueue with
  that key returns that job (same id) and writes nothing. Without ``dedup_ttl``, the key holds
  only while its job is unfinished.
- **Debounce** (``debounce`` seconds, with a dedup key): the job starts ``debounce`` seconds
  after it is enqueued; an enqueue with the key before it started replaces its payload, name,
  timeout, backoff, headers, priority and max_attempts (its id and creation time stay) and
  moves its start to now + ``debounce`` (a ``debounced`` job event). Once it started, the next
  enqueue with the key creates a new job.

On Redis the check is atomic in ``enqueue.lua`` (``scripts/lib/dedup.lua``: a hash of dedup
key -> job id and a zset of expiries, trimmed by the enqueues that add entries); the memory
backend keeps the same table in :class:`~redkeep.queue.memory_dedup.MemoryDedup`. Validation
(``InvalidJob`` naming the field) is in :meth:`JobQueue._prepare
<redkeep.queue.base.JobQueue>`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from redkeep.queue.prepare import _Prepared

__all__ = ["dedup_options"]


def dedup_options(p: _Prepared) -> str:
    """The suffix of enqueue.lua's options for a job with a dedup key:
    ``|dedup_ttl_ms|debounce_ms|idlen|key`` (``idlen``: bytes of ``[<id JSON>`` that start its
    data record, which a debounce replaces with the existing job's id)."""
    idlen = 1 + len(orjson.dumps(p.id))
    return f"|{p.dedup_ttl_ms}|{p.debounce_ms}|{idlen}|{p.dedup}"
