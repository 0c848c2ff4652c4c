"""Rate limits and concurrency keys: what a task may carry, and the pure rules behind them.

A task carries its limits (:class:`TaskLimits`), stamped at push from the task's or its
queue's declaration, like ``max_attempts``: the backend needs no registry of limits, claims
need no extra argument, and every worker, whatever its version, enforces what the task says.

- **Rate** (``"100/s"``, ``"5/m"``, ``"1000/h"``): a token bucket per queue and rate key,
  stored in the backend and drawn from inside ``claim``, for all workers together. The
  bucket holds at most :attr:`Rate.burst` tokens (a twentieth of the count, at least one),
  so a rate of 100/s never lets more than 105 tasks be claimed in any one second, and a
  worker's delay in starting what it claimed has room before a window sees 110.
- **Concurrency key** (a string computed from the arguments at push) with a limit N: a claim
  never leaves more than N tasks of one queue and key running at once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from shoal.core.errors import ConfigurationError

_PERIODS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}
_RATE = re.compile(r"\s*(\d+)\s*/\s*([a-z]+)\s*")

BURST_DIVISOR = 20
"""A full bucket holds a twentieth of the count: small enough that a one-second window of
claims never holds more than 105% of the rate (starts, which follow claims by a worker's
delay, stay within 110%: measured, bench/limits.py), large enough that claims need not come
for every token.
Integer arithmetic, so PostgreSQL's and Redis's copies of the rule agree to the token."""


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` tasks started per ``period`` seconds, for all workers together."""

    count: int
    period: float

    @classmethod
    def parse(cls, text: str | Rate) -> Rate:
        """``"100/s"``, ``"5/minute"``, ``"1000/h"``: a count, a slash and a unit."""
        if isinstance(text, Rate):
            return text
        found = _RATE.fullmatch(text.lower()) if isinstance(text, str) else None
        if found is None or found.group(2) not in _PERIODS or int(found.group(1)) < 1:
            raise ConfigurationError(
                f"rate limit {text!r} is not COUNT/UNIT with a COUNT of 1 or more and a UNIT "
                "of s, m or h (for example '100/s', '30/minute', '1000/h')"
            )
        return cls(int(found.group(1)), _PERIODS[found.group(2)])

    @property
    def per_second(self) -> float:
        return self.count / self.period

    @property
    def burst(self) -> int:
        """Tokens a full bucket holds: what may start at once after a quiet spell."""
        return max(1, self.count // BURST_DIVISOR)

    def refilled(self, tokens: float, elapsed: float) -> float:
        """Tokens in a bucket that held ``tokens`` ``elapsed`` seconds ago."""
        return min(float(self.burst), tokens + max(0.0, elapsed) * self.per_second)

    @property
    def recheck_interval(self) -> float:
        """How often a worker whose claims this rate holds back claims again: twice while the
        bucket refills (a twentieth of the period), so the tokens of a bucket that fills up are
        not lost waiting for a claim, whatever the count."""
        return self.period / BURST_DIVISOR / 2

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "m", 3600.0: "h"}.get(self.period, f"{self.period:g}s")
        return f"{self.count}/{unit}"


@dataclass(frozen=True, slots=True)
class TaskLimits:
    """The limits one task is claimed under; the default holds none (the claim's fast path)."""

    rate_key: str | None = None
    """The bucket the task draws from within its queue (``task:NAME`` or ``queue``)."""
    rate: Rate | None = None
    concurrency_key: str | None = None
    """Tasks of one queue with the same key run at most ``concurrency_limit`` at a time."""
    concurrency_limit: int | None = None

    def __post_init__(self) -> None:
        if (self.rate_key is None) != (self.rate is None):
            raise ConfigurationError("a rate key needs a rate, and a rate needs a key")
        if (self.concurrency_key is None) != (self.concurrency_limit is None):
            raise ConfigurationError("a concurrency key needs a limit, and a limit needs a key")
        if self.concurrency_limit is not None and self.concurrency_limit < 1:
            raise ConfigurationError("concurrency_limit must be at least 1")

    @property
    def limited(self) -> bool:
        return self.rate is not None or self.concurrency_key is not None

    def columns(self) -> tuple[str | None, int | None, float | None, str | None, int | None]:
        """As SQL stores it: rate key, rate count, rate period, concurrency key and limit."""
        rate = self.rate
        return (
            self.rate_key,
            None if rate is None else rate.count,
            None if rate is None else rate.period,
            self.concurrency_key,
            self.concurrency_limit,
        )

    @classmethod
    def from_columns(
        cls,
        rate_key: str | None,
        count: int | None,
        period: float | None,
        concurrency_key: str | None,
        concurrency_limit: int | None,
    ) -> TaskLimits:
        if rate_key is None and concurrency_key is None:
            return NO_LIMITS
        rate = None if count is None or period is None else Rate(int(count), float(period))
        return cls(rate_key, rate, concurrency_key, concurrency_limit)


NO_LIMITS = TaskLimits()

LIMIT_COLUMNS = ("rate_key", "rate_count", "rate_period", "concurrency_key", "concurrency_limit")
"""The columns SQL backends store :meth:`TaskLimits.columns` in, in that order."""


class TokenBucket:
    """A rate limit of one process (a worker's own ``--rate-limit``), on the monotonic clock."""

    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self._tokens = float(rate.burst)
        self._at = now

    def available(self, now: float) -> int:
        return math.floor(self.rate.refilled(self._tokens, now - self._at))

    def take(self, count: int, now: float) -> None:
        self._tokens = self.rate.refilled(self._tokens, now - self._at) - count
        self._at = now

    def wait(self, now: float) -> float:
        """Seconds until one token is there (zero if one is)."""
        missing = 1.0 - self.rate.refilled(self._tokens, now - self._at)
        return max(0.0, missing / self.rate.per_second)
