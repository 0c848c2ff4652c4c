"""The retry policy: pure decisions about when a failed attempt runs again."""

from __future__ import annotations

import random
from dataclasses import dataclass

from shoal.core.backoff import Backoff
from shoal.core.errors import PermanentFailure, Retry


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by a number of attempts.

    The delay before attempt ``n + 1`` is ``base_delay * multiplier ** (n - 1)``, capped at
    ``max_delay``, then shortened by a random fraction of up to ``jitter`` so that tasks
    that failed together (a database blip) do not all come back at the same instant.
    """

    max_attempts: int = 3
    """Attempts in all, the first included; a task's own ``max_attempts`` wins over it."""
    base_delay: float = 1.0
    """Seconds before the second attempt: long enough for a blip to pass."""
    multiplier: float = 2.0
    max_delay: float = 300.0
    """Cap on any one delay, so a long-failing task is still retried every few minutes."""
    jitter: float = 0.5
    """Fraction of each delay that is randomised (0 = exact delays, 1 = full jitter)."""
    never_retry: tuple[type[BaseException], ...] = ()
    """Exception types that end the task dead at once: retrying cannot fix them."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        curve = Backoff(self.base_delay, self.max_delay, self.multiplier, self.jitter)
        return curve.delay(attempt, rng)

    def next_delay(
        self,
        error: BaseException,
        attempt: int,
        max_attempts: int,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds until the next attempt, or None when the task should end dead."""
        if isinstance(error, (PermanentFailure, *self.never_retry)) or attempt >= max_attempts:
            return None
        if isinstance(error, Retry):
            return max(error.delay, 0.0)
        return self.backoff(attempt, rng)


NO_RETRY = RetryPolicy(max_attempts=1)
"""Run once; any failure is final."""
