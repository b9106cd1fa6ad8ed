"""Medians of an A/B run of bench/ab_queue.sh (the harness's result files, one per run and side,
collected by it as ``A-1.json``, ``B-1.json``...).

python3 bench/ab_summary.py AB_DIR RUNS
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

FIELDS = [
    ("enqueue_jobs_per_s", "bulk enqueue jobs/s"),
    ("seq_enqueue_jobs_per_s", "1-by-1 enqueue jobs/s"),
    ("process_jobs_per_s", "end-to-end jobs/s"),
    ("latency_ms_median", "latency p50 ms"),
    ("latency_ms_p99", "latency p99 ms"),
]


def main() -> None:
    results, runs = Path(sys.argv[1]), int(sys.argv[2])
    values: dict[tuple[str, str, str], list[float]] = {}
    for side in ("A", "B"):
        for run in range(1, runs + 1):
            path = results / f"{side}-{run}.json"
            for row in json.loads(path.read_text()):
                if row.get("kind") != "queue" or row.get("status") != "ok":
                    continue
                for field, _ in FIELDS:
                    if row.get(field) is not None:
                        key = (row["peer"], field, side)
                        values.setdefault(key, []).append(float(row[field]))
    peers = sorted({p for p, _, _ in values})
    print(f"medians of {runs} interleaved runs per side (A, B, B/A)")
    for peer in peers:
        print(f"\n{peer}")
        for field, label in FIELDS:
            a = values.get((peer, field, "A"), [])
            b = values.get((peer, field, "B"), [])
            if not a or not b:
                continue
            ma, mb = statistics.median(a), statistics.median(b)
            runs_text = f"A {[round(x, 3) for x in a]}  B {[round(x, 3) for x in b]}"
            print(f"  {label:<24} {ma:>12,.3f} {mb:>12,.3f} {mb / ma:>6.2f}x   {runs_text}")


if __name__ == "__main__":
    main()
