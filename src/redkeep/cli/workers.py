"""``redkeep workers``: the workers registered on the backend, from their heartbeats."""

from __future__ import annotations

import time

import typer
from rich.table import Table

from redkeep.cli.ops import JsonOption, backend_client, emit_json, load_settings, out, run, utc_time
from redkeep.queue.workers import HEARTBEAT_TTL, WorkerView, registry_of

__all__ = ["register", "workers"]


def _ago(ts: float, now: float) -> str:
    return f"{max(0.0, now - ts):.0f}s ago"


def workers(json_out: JsonOption = False) -> None:
    """Live workers: id, host, pid, queues, started, last heartbeat, active and processed jobs."""
    settings = load_settings()

    async def body() -> list[WorkerView]:
        async with backend_client(settings) as client:
            return await registry_of(client, settings.key_prefix).list()

    rows = run(body)
    if json_out:
        emit_json({"key_prefix": settings.key_prefix, "workers": rows})
        return
    if not rows:
        out.print(
            f"no live workers under key prefix {settings.key_prefix!r} (a worker is listed "
            f"while its heartbeats arrive, and for {HEARTBEAT_TTL:g}s after the last one)"
        )
        return
    now = time.time()
    table = Table(
        "id", "host", "pid", "queues", "started", "last heartbeat", "active", "processed",
        title=f"workers ({settings.key_prefix})",
    )  # fmt: skip
    for w in rows:
        table.add_row(
            w["id"],
            w["host"],
            str(w["pid"]),
            ", ".join(w["queues"]),
            utc_time(w["started_at"]),
            _ago(w["last_heartbeat"], now),
            f"{w['active']}/{w['concurrency']}",
            str(w["processed"]),
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add ``redkeep workers`` to the CLI."""
    app.command("workers")(workers)
