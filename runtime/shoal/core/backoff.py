"""Back-off between tries of something that failed: one rule for every retry loop.

Every loop that tries again after an error (a worker after a backend error, a listener
reconnecting, a Redis call retried until its deadline, the operator's backend watch) waits
``base * factor ** (failures - 1)`` seconds, capped at ``cap``, shortened by a random
fraction of up to ``jitter``: many processes cut off by the same outage then come back
spread out instead of in lockstep. The task retry policy (:mod:`shoal.core.retry`) uses the
same formula through :meth:`Backoff.delay`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential, capped, jittered delays; pure apart from the random numbers."""

    base: float = 0.1
    """Seconds after the first failure: short, since most blips are shorter still."""
    cap: float = 5.0
    """The longest wait, so that a long outage is still noticed ending within seconds."""
    factor: float = 2.0
    jitter: float = 0.5
    """Fraction of each delay that is randomised (0 = exact delays, 1 = full jitter)."""

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError(f"a back-off needs delays of 0 s or more, not {self.base}, {self.cap}")
        if self.factor < 1:
            raise ValueError(f"a back-off factor below 1 shrinks: {self.factor}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, not {self.jitter}")

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``failures`` failures in a row (1 for the first)."""
        try:
            raw = min(self.cap, self.base * self.factor ** max(failures - 1, 0))
        except OverflowError:  # factor ** exponent beyond a float: long past the cap
            raw = self.cap
        return raw * (1 - self.jitter * (rng or random).random())
