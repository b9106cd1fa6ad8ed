"""The reliability harness itself: percentiles, bounded loops, figures and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reliability import report
from tests.reliability.harness import Deadline, Figures, Latencies, bounded, wait_until


def test_percentiles_use_nearest_rank() -> None:
    lat = Latencies([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert lat.percentile(50) == pytest.approx(0.050)
    assert lat.percentile(99) == pytest.approx(0.099)
    assert lat.summary() == {"count": 100, "p50_ms": 50.0, "p99_ms": 99.0, "max_ms": 100.0}
    assert Latencies().percentile(99) == 0.0


def test_bounded_stops_at_count_and_at_time() -> None:
    assert list(bounded(5, 10.0)) == [0, 1, 2, 3, 4]
    deadline = Deadline(5.0)
    n = sum(1 for _ in bounded(10**9, 0.05))
    assert 0 < n < 10**9
    assert not deadline.expired


async def test_wait_until_times_out_with_a_named_condition() -> None:
    async def never() -> bool:
        return False

    with pytest.raises(AssertionError, match="the answer"):
        await wait_until(never, timeout=0.05, interval=0.01, what="the answer")


def test_figures_are_written_and_rendered(tmp_path: Path) -> None:
    fig = Figures("crash_loop", "Worker crash loop", directory=tmp_path)
    fig.bounds(jobs=10)
    fig.record(jobs=10, kills=2, duplicates=1, lost=0, latency=Latencies([0.001, 0.002]).summary())
    fig.finish("passed")
    data = json.loads((tmp_path / "crash_loop.json").read_text())
    assert data["figures"]["kills"] == 2
    assert data["outcome"] == "passed"
    text = report.render([data], "short")
    assert "| crash_loop | passed | 10 | 2 | 1 | 0 |" in text
    assert "latency.p99_ms" in text
    assert "Redis:" in text and "Machine:" in text
