"""Fixtures of the reliability suite: per-scenario figures with their pass/fail outcome."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator

import pytest

from tests.reliability.harness import Figures


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" or report.failed:
        item.stash.setdefault(_reports_key, []).append(report)
    return report


_reports_key = pytest.StashKey[list[pytest.TestReport]]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Callable[..., Figures]]:
    """Factory ``figures(scenario, title, part=None)``; the outcome is added when the test ends."""
    made: list[Figures] = []

    def make(scenario: str, title: str, part: str | None = None) -> Figures:
        fig = Figures(scenario, title, part=part)
        fig.meta(description=" ".join((request.module.__doc__ or "").split()))
        made.append(fig)
        return fig

    yield make
    reports = request.node.stash.get(_reports_key, [])
    failed = [r for r in reports if r.failed]
    outcome = "failed" if failed else "passed" if reports else "error"
    detail = None
    if failed:
        crash = getattr(failed[0].longrepr, "reprcrash", None)
        detail = crash.message if crash is not None else str(failed[0].longrepr)[-500:]
        detail = (detail.splitlines() or [""])[0][:300]
    for fig in made:
        fig.finish(outcome, detail)
