"""Handlers for bench/worker_bench.py, in a module of their own so that a handler process
imports them by name."""

from __future__ import annotations

from typing import Any


def sync_noop(job: Any) -> None:
    return None


async def async_noop(job: Any) -> None:
    return None
