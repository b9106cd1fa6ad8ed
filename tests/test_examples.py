"""The example handlers that `redkeep serve` runs on memory backends."""

from __future__ import annotations

import pytest

from redkeep.examples import MAX_SLEEP, echo, fail, handlers, sleep
from redkeep.queue.job import Job


def job(payload: object) -> Job:
    return Job(id="j1", name="x", queue="default", payload=payload)


def test_registry_names() -> None:
    assert dict(handlers) == {"echo": echo, "sleep": sleep, "fail": fail}


async def test_echo_returns_payload() -> None:
    assert await echo(job({"a": [1, 2]})) == {"a": [1, 2]}


async def test_sleep_accepts_dict_or_number_and_bounds_it() -> None:
    assert await sleep(job({"seconds": 0.01})) == {"slept": 0.01}
    assert await sleep(job(0)) == {"slept": 0.0}
    with pytest.raises(ValueError, match="between 0 and"):
        await sleep(job({"seconds": MAX_SLEEP + 1}))
    with pytest.raises(ValueError, match="must be a number"):
        await sleep(job({"seconds": "soon"}))


async def test_fail_raises_with_message() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        await fail(job({"message": "boom"}))
    with pytest.raises(RuntimeError, match="always fails"):
        await fail(job(None))
