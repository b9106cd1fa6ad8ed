"""The queue's Lua scripts, read once at import; run them with ``client.evalsha``."""

from __future__ import annotations

from pathlib import Path

from redkeep.redis.base import Script

__all__ = [
    "CANCEL",
    "DELETE",
    "ENQUEUE",
    "EXTEND",
    "PURGE",
    "RESTORE",
    "RETRY",
    "STEP",
    "WORKER_BEAT",
]

_HERE = Path(__file__).resolve().parent


def _load(name: str) -> Script:
    return Script.from_file(_HERE / f"{name}.lua")


ENQUEUE = _load("enqueue")
STEP = _load("step")
EXTEND = _load("extend")
CANCEL = _load("cancel")
RETRY = _load("retry")
PURGE = _load("purge")
RESTORE = _load("restore")
DELETE = _load("delete")
WORKER_BEAT = _load("worker_beat")
