"""Render the queue and cache tables of a peer-harness results file as Markdown.

    python bench/render_peers.py $BENCH_HOME/results/peers-YYYYMMDD-TAG.json

Queue rows are medians over the run's repetitions; the ratio table compares redkeep with the
best peer of the same run on each metric. Cache rows are printed as measured, with each
redkeep row's ratio to the raw redis-py + json row measured just before it.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from typing import Any

QUEUE_FIELDS = [
    ("enqueue_jobs_per_s", "bulk/normal enqueue jobs/s", True, ">= 2x"),
    ("seq_enqueue_jobs_per_s", "1-by-1 enqueue jobs/s", True, ">= 1.5x"),
    ("process_jobs_per_s", "end-to-end jobs/s", True, ">= 2x"),
    ("latency_ms_median", "latency p50 ms", False, "<= 1x (no worse)"),
    ("latency_ms_p99", "latency p99 ms", False, "< 2 ms absolute"),
]
CACHE_OPS = ["get_hit_100B", "get_hit_10KB", "get_miss", "set_100B", "set_10KB"]


def fmt(value: float | None, field: str) -> str:
    if value is None:
        return "failed"
    return f"{value:,.0f}" if "per_s" in field else f"{value:.2f}"


def queue_tables(rows: list[dict[str, Any]]) -> list[str]:
    peers: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("kind") == "queue":
            peers.setdefault(r["peer"], []).append(r)

    def med(peer: str, field: str) -> float | None:
        vals = [
            r[field]
            for r in peers.get(peer, [])
            if r.get("status") == "ok" and r.get(field) is not None
        ]
        return statistics.median(vals) if vals else None

    ours = sorted(p for p in peers if p.startswith("redkeep"))
    others = sorted(p for p in peers if not p.startswith("redkeep"))
    out = [
        "| peer | bulk/normal enqueue jobs/s | 1-by-1 enqueue jobs/s | end-to-end jobs/s "
        "| latency p50 ms | p99 ms | duplicates | worker concurrency |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in ours + others:
        ok = [r for r in peers[p] if r.get("status") == "ok"]
        if not ok:
            out.append(f"| {p} | failed | | | | | | |")
            continue
        dup = sum(r.get("duplicate_executions") or 0 for r in ok)
        cells = " | ".join(fmt(med(p, f), f) for f, *_ in QUEUE_FIELDS)
        out.append(f"| {p} | {cells} | {dup} | {ok[0].get('worker_concurrency', '')} |")
    if not ours or not others:
        return out
    out += ["", "| metric | redkeep (best variant) | best peer | ratio | target |"]
    out.append("|---|---|---|---|---|")
    for field, label, higher, target in QUEUE_FIELDS:
        mine_all = [(v, p) for p in ours if (v := med(p, field)) is not None]
        cand = [(v, p) for p in others if (v := med(p, field)) is not None]
        if not mine_all or not cand:
            continue
        mine = max(mine_all) if higher else min(mine_all)
        best = max(cand) if higher else min(cand)
        ratio = mine[0] / best[0]
        out.append(
            f"| {label} | {fmt(mine[0], field)} ({mine[1]}) | {fmt(best[0], field)} ({best[1]}) "
            f"| {ratio:.2f}x | {target} |"
        )
    out += ["", *transport_table(ours, others, med)]
    out += ["", *floor_table(ours, others, peers, med)]
    return out


def floor_table(
    ours: list[str],
    others: list[str],
    peers: dict[str, list[dict[str, Any]]],
    med: Callable[[str, str], float | None],
) -> list[str]:
    """What bounds a one-at-a-time enqueue: each awaited enqueue waits for one round trip and the
    enqueue script's run in Redis, so even with no client-side work it cannot beat
    1 / (round trip + script time). Medians of the ``seq_floor`` fields redkeep_bench.py adds."""
    python = [p for p in others if not p.startswith("bullmq_node")]
    best = max(((v, q) for q in python if (v := med(q, "seq_enqueue_jobs_per_s"))), default=None)
    out = [
        "| redkeep variant | 1-by-1 enqueue/s | awaited GET/s | awaited no-op script/s "
        "| enqueue script µs in Redis | bound: 1 / (GET + script) | 3x fastest Python peer |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in ours:
        floors = [r["seq_floor"] for r in peers[p] if r.get("status") == "ok" and "seq_floor" in r]
        if not floors:
            continue

        def fm(key: str, floors: list[dict[str, Any]] = floors) -> float:
            return statistics.median(float(f[key]) for f in floors if f.get(key) is not None)

        get, noop, usec = (
            fm("awaited_get_per_s"),
            fm("awaited_noop_script_per_s"),
            fm("enqueue_script_usec"),
        )
        bound = 1e6 / (1e6 / get + usec)
        target = f"{3 * best[0]:,.0f} ({best[1]})" if best else "-"
        out.append(
            f"| {p} | {fmt(med(p, 'seq_enqueue_jobs_per_s'), 'seq_enqueue_jobs_per_s')} "
            f"| {get:,.0f} | {noop:,.0f} | {usec:.1f} | {bound:,.0f} | {target} |"
        )
    return out if len(out) > 2 else []


def transport_table(
    ours: list[str], others: list[str], med: Callable[[str, str], float | None]
) -> list[str]:
    """Issue 14's targets: each redkeep variant against the fastest Python peer (BullMQ on
    Node excluded) and against BullMQ on Node at its best concurrency, per throughput metric."""
    node = [p for p in others if p.startswith("bullmq_node")]
    python = [p for p in others if p not in node]
    out = [
        "| redkeep variant | metric | jobs/s | fastest Python peer | ratio "
        "| BullMQ on Node | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in ours:
        for field, label, _, _ in QUEUE_FIELDS[:3]:
            mine = med(p, field)
            py = max(((v, q) for q in python if (v := med(q, field)) is not None), default=None)
            nd = max(((v, q) for q in node if (v := med(q, field)) is not None), default=None)
            if mine is None:
                continue
            cells = [f"| {p} | {label} | {fmt(mine, field)}"]
            for best in (py, nd):
                if best is None:
                    cells.append(" | - | -")
                else:
                    cells.append(f" | {fmt(best[0], field)} ({best[1]}) | {mine / best[0]:.2f}x")
            out.append("".join(cells) + " |")
    return out


def cache_tables(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| library | mode | " + " | ".join(CACHE_OPS) + " |",
        "|---|---|" + "---|" * len(CACHE_OPS),
    ]
    raw: dict[str, dict[str, float]] = {}
    for r in rows:
        if r.get("kind") != "cache" or r.get("status") == "failed":
            continue
        name = f"{r.get('peer', '?')} ({r.get('version', '')})"
        for mode in ("seq", "c50"):
            res = {op: r.get("results", {}).get(f"{op}_{mode}") for op in CACHE_OPS}
            cells = []
            for op in CACHE_OPS:
                v = res[op]
                base = raw.get(mode, {}).get(op)
                ratio = (
                    f" ({v / base:.2f}x)"
                    if v and base and "redkeep" in name and "Memory" not in name
                    else ""
                )
                cells.append("" if v is None else f"{v:,.0f}{ratio}")
            label = "1 coroutine" if mode == "seq" else "50 coroutines"
            out.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
            if "raw" in name:
                raw[mode] = {op: v for op, v in res.items() if v}
    return out


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        rows = json.load(f)
    meta = next((r for r in rows if r.get("kind") == "meta"), {})
    name = sys.argv[1].rsplit("/", 1)[-1]
    print(f"Run of {meta.get('date')} (`{name}`), python {meta.get('python')}")
    print()
    print("\n".join(queue_tables(rows)))
    print()
    print("\n".join(cache_tables(rows)))


if __name__ == "__main__":
    main()
