"""Retry delays: exponential backoff with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Delay before retry number ``attempt`` (1 = the first retry).

    ``kind="exponential"``: the step ``min(max_delay, base * 2**(attempt-1))`` with "equal jitter",
    i.e. a delay drawn uniformly from ``[step/2, step]`` (``jitter=False`` gives ``step``).
    ``kind="fixed"``: ``base`` every time (halved at most by jitter likewise).
    """

    base: float = 1.0
    max_delay: float = 3600.0
    kind: str = "exponential"
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("exponential", "fixed"):
            raise ValueError(f"backoff kind must be 'exponential' or 'fixed', got {self.kind!r}")
        if not (self.base >= 0 and self.max_delay >= 0):
            raise ValueError("backoff base and max_delay must be >= 0")

    def step(self, attempt: int) -> float:
        """The un-jittered delay (upper bound) for ``attempt``."""
        if self.kind == "fixed":
            return min(self.base, self.max_delay)
        exponent = min(max(attempt, 1) - 1, 64)
        return min(self.max_delay, self.base * (2.0**exponent))

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt``."""
        step = self.step(attempt)
        if not self.jitter:
            return step
        return step / 2 + random.uniform(0, step / 2)

    def to_list(self) -> list[object]:
        return [self.base, self.max_delay, self.kind, self.jitter]

    @classmethod
    def from_list(cls, data: list[object]) -> Backoff:
        base, max_delay, kind, jitter = data
        return cls(float(base), float(max_delay), str(kind), bool(jitter))  # type: ignore[arg-type]
