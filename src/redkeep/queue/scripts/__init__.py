"""The queue's Lua scripts, read once at import; run them with ``client.evalsha``.

Each script starts with a header (BullMQ style): what it does, ``-- @idempotent`` when running
it twice has the effect of running it once (transports may then re-send it after a lost reply),
one ``-- KEYS[n] <name>`` line per key (``name`` is a :class:`~redkeep.queue.keys.QueueKeys`
attribute; a :class:`~redkeep.queue.keys.WorkerKeys` one for the worker registry's) and its
``ARGV``. :func:`load_script` expands ``-- @include "lib/..."`` lines (the
shared library in ``scripts/lib/``) and puts ``local K = {<name> = KEYS[n], ...}`` in front, so
scripts and library functions name keys as ``K.state``, ``K[status]``: every key a script
touches is one of its ``KEYS`` (enforced by ``tests/queue/test_lua_keys.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from redkeep.redis.base import Script

__all__ = [
    "ACK",
    "BULK",
    "CANCEL",
    "DELETE",
    "ENQUEUE",
    "EXTEND",
    "FLOW",
    "FLOW_LINK",
    "FLOW_RELAY",
    "JOB_EVENTS",
    "LIMITS",
    "PAUSE",
    "PROGRESS",
    "PURGE",
    "READ",
    "RESTORE",
    "RETRY",
    "SCHEDULE_CLAIM",
    "SCHEDULE_FIRE",
    "SCHEDULE_WRITE",
    "STEP",
    "UPGRADE",
    "WORKER_BEAT",
    "WORKER_LIST",
    "QueueScript",
    "load_script",
]

_HERE = Path(__file__).resolve().parent
_KEY_LINE = re.compile(r"^--\s*KEYS\[(\d+)\]\s+([A-Za-z_]\w*)")


@dataclass(frozen=True)
class QueueScript(Script):
    """A queue script and the names of the keys it declares, in ``KEYS`` order."""

    keys: tuple[str, ...] = field(default=())


def declared_keys(source: str) -> tuple[str, ...]:
    """The names of the ``-- KEYS[n] <name>`` header lines, checked to be numbered 1..n."""
    names: list[str] = []
    for line in source.splitlines():
        match = _KEY_LINE.match(line.strip())
        if match is None:
            continue
        if int(match.group(1)) != len(names) + 1:
            raise ValueError(f"KEYS[{match.group(1)}] is out of order in the script header")
        names.append(match.group(2))
    return tuple(names)


def load_script(path: Path) -> QueueScript:
    """Read a script with its includes expanded and the key table ``K`` in front."""
    base = Script.from_file(path)
    keys = declared_keys(path.read_text(encoding="utf-8"))
    table = ", ".join(f"{name} = KEYS[{i}]" for i, name in enumerate(keys, 1))
    source = f"local K = {{{table}}}\n{base.source}"
    return QueueScript(name=base.name, source=source, idempotent=base.idempotent, keys=keys)


def _load(name: str) -> QueueScript:
    return load_script(_HERE / f"{name}.lua")


ENQUEUE = _load("enqueue")
STEP = _load("step")
EXTEND = _load("extend")
CANCEL = _load("cancel")
RETRY = _load("retry")
PURGE = _load("purge")
RESTORE = _load("restore")
READ = _load("read")
PROGRESS = _load("progress")
JOB_EVENTS = _load("job_events")
SCHEDULE_WRITE = _load("schedule_write")
SCHEDULE_CLAIM = _load("schedule_claim")
SCHEDULE_FIRE = _load("schedule_fire")
UPGRADE = _load("upgrade")
ACK = _load("ack")
DELETE = _load("delete")
BULK = _load("bulk")
FLOW = _load("flow")
FLOW_LINK = _load("flow_link")
FLOW_RELAY = _load("flow_relay")
PAUSE = _load("pause")
LIMITS = _load("limits")
# The worker registry's (their keys are WorkerKeys, not QueueKeys, attributes).
WORKER_BEAT = _load("worker_beat")
WORKER_LIST = _load("worker_list")
