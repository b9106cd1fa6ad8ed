"""Small server-rendered charts for the dashboard: inline SVG, no script, no library.

:func:`throughput_chart` draws a queue's completed and failed jobs per minute (from
:meth:`~redkeep.queue.events.EventsMixin.throughput`) as stacked bars. Every text in the SVG
is escaped; the numbers are in its ``aria-label`` and ``<desc>`` for
screen readers and in a ``<title>`` per bar for pointer users. Colours come from the
stylesheet (classes), since the CSP forbids inline styles.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from redkeep.queue.events import ThroughputPoint

__all__ = ["CHART_HEIGHT", "CHART_WIDTH", "rate", "throughput_chart", "throughput_summary"]

CHART_WIDTH = 150
CHART_HEIGHT = 32
_TOP = 2  # room above the highest bar


def rate(jobs: int, seconds: float) -> str:
    """``jobs`` per second over ``seconds`` as short text: ``2.5/s``, ``0.033/s``, ``0/s``."""
    if jobs <= 0 or seconds <= 0:
        return "0/s"
    value = jobs / seconds
    if value >= 10:
        return f"{value:.0f}/s"
    if value >= 1:
        return f"{value:.1f}/s"
    return f"{value:.2g}/s"


def throughput_summary(points: Sequence[ThroughputPoint]) -> str:
    """One sentence with the totals and rates of ``points`` (the chart's accessible name)."""
    seconds = 60.0 * len(points)
    completed = sum(p.completed for p in points)
    failed = sum(p.failed for p in points)
    return (
        f"Last {len(points)} minutes: {completed} completed ({rate(completed, seconds)}), "
        f"{failed} failed ({rate(failed, seconds)})"
    )


def _minute(ts: float) -> str:
    minutes = int(ts // 60) % 1440
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def throughput_chart(points: Sequence[ThroughputPoint], queue: str) -> Markup:
    """Stacked bars per minute (completed below, failed above), oldest first, scaled to the
    busiest minute; minutes without finished jobs draw nothing (the base line shows)."""
    label = escape(f"{queue}: {throughput_summary(points)}")
    peak = max((p.completed + p.failed for p in points), default=0)
    slot = CHART_WIDTH / max(len(points), 1)
    scale = (CHART_HEIGHT - _TOP) / peak if peak else 0.0
    w = max(slot - 1.5, 1.0)
    # Only numbers go in unescaped: every text passes through escape() (the label above).
    parts = [
        f'<svg class="chart" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" width="{CHART_WIDTH}" '
        f'height="{CHART_HEIGHT}" role="img" aria-label="{label}" '
        f'data-completed="{sum(p.completed for p in points)}" '
        f'data-failed="{sum(p.failed for p in points)}"><title>{label}</title>'
        "<desc>Jobs per minute, oldest first (completed/failed): "
        + ", ".join(f"{p.completed}/{p.failed}" for p in points)
        + f'</desc><line class="base" x1="0" y1="{CHART_HEIGHT}" x2="{CHART_WIDTH}" '
        f'y2="{CHART_HEIGHT}"/>'
    ]
    for i, p in enumerate(points):
        c, f = int(p.completed), int(p.failed)
        if not c and not f:
            continue  # an idle minute draws nothing (most minutes of most queues)
        x = i * slot + 0.5
        h_done = c * scale
        h_fail = f * scale
        parts.append(
            f'<g class="bar" data-minute="{i}" data-completed="{c}" data-failed="{f}">'
            f"<title>{_minute(p.minute)} UTC: {c} completed, {f} failed</title>"
        )
        if c:
            parts.append(f'<rect class="done" x="{x:.1f}" y="{CHART_HEIGHT - h_done:.1f}" '
                         f'width="{w:.1f}" height="{h_done:.1f}"/>')  # fmt: skip
        if f:
            parts.append(f'<rect class="fail" x="{x:.1f}" y="{CHART_HEIGHT - h_done - h_fail:.1f}" '
                         f'width="{w:.1f}" height="{h_fail:.1f}"/>')  # fmt: skip
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - numbers and escape()d text only
