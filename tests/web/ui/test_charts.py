"""The dashboard's inline SVG charts: scaled bars, escaped text, numbers for screen readers."""

from __future__ import annotations

import re

import pytest

from redkeep.queue.events import ThroughputPoint
from redkeep.web.ui.charts import CHART_HEIGHT, rate, throughput_chart


def _points(pairs: list[tuple[int, int]]) -> list[ThroughputPoint]:
    return [ThroughputPoint(1_800_000_000.0 + 60 * i, c, f) for i, (c, f) in enumerate(pairs)]


def test_bars_are_stacked_and_scaled_to_the_busiest_minute() -> None:
    svg = str(throughput_chart(_points([(0, 0), (6, 2), (3, 0)]), "q"))
    rects = re.findall(r'<rect class="(done|fail)" x="[^"]+" y="([^"]+)" width="[^"]+" '
                       r'height="([^"]+)"/>', svg)  # fmt: skip
    top = CHART_HEIGHT - 2
    assert [kind for kind, _, _ in rects] == ["done", "fail", "done"]  # nothing for zeros
    heights = [float(h) for _, _, h in rects]
    assert heights == pytest.approx([top * 6 / 8, top * 2 / 8, top * 3 / 8], abs=0.06)
    assert re.findall(r'<g class="bar" data-minute="(\d+)"', svg) == ["1", "2"]
    # the failed part sits on top of the completed part
    y_done, y_fail = float(rects[0][1]), float(rects[1][1])
    assert y_fail == pytest.approx(y_done - top * 2 / 8, abs=0.06)
    assert "08:01 UTC: 6 completed, 2 failed" in svg
    assert 'aria-label="q: Last 3 minutes: 9 completed (0.05/s), 2 failed (0.011/s)"' in svg


def test_an_idle_queue_draws_only_the_base_line() -> None:
    svg = str(throughput_chart(_points([(0, 0)] * 15), "idle"))
    assert "<rect" not in svg and '<line class="base"' in svg
    assert 'aria-label="idle: Last 15 minutes: 0 completed (0/s), 0 failed (0/s)"' in svg


def test_names_are_escaped() -> None:
    svg = str(throughput_chart(_points([(1, 0)]), '<script>alert("x")</script>'))
    assert "<script>" not in svg
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in svg


def test_rates_read_well() -> None:
    assert [rate(0, 900), rate(3, 900), rate(90, 60), rate(6000, 60)] == [
        "0/s", "0.0033/s", "1.5/s", "100/s"
    ]  # fmt: skip
