"""When each of a worker's recurring backend calls is due: pure, apart from the clock it is fed.

A worker makes four kinds of backend calls (heartbeats, reaps, claims, records), and each
keeps its own pace: its cadence while it succeeds, a back-off of its own once it fails. A
failing claim therefore never delays a heartbeat: one back-off for all of them once let a
2.8 s outage delay heartbeats by 3.3 s, long enough for 5 s leases to expire.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from shoal.core.backoff import Backoff


@dataclass(slots=True)
class Pace:
    """The next due time of one recurring call, and how many times in a row it failed."""

    every: float
    """Seconds between calls while they succeed (0: whenever the worker needs one)."""
    backoff: Backoff
    """Delays after failures in a row."""
    spread: float = 0.0
    """Fraction by which ``every`` is randomised either way, so that a fleet of workers
    does not call in lockstep."""
    due: float = 0.0
    failures: int = 0

    def is_due(self, now: float) -> bool:
        return now >= self.due

    @property
    def backing_off(self) -> bool:
        return self.failures > 0

    def succeeded(self, now: float) -> None:
        self.failures = 0
        jitter = random.uniform(1 - self.spread, 1 + self.spread) if self.spread else 1.0
        self.due = now + self.every * jitter

    def failed(self, now: float) -> float:
        """Count a failure; returns the seconds until the call is due again."""
        self.failures += 1
        delay = self.backoff.delay(self.failures)
        self.due = now + delay
        return delay

    @property
    def worth_logging(self) -> bool:
        """Whether the failure just counted is worth a log line: the 1st, 2nd, 4th, 8th...
        in a row, so that a long outage is logged without flooding the log."""
        return self.failures & (self.failures - 1) == 0


def heartbeat_pace(heartbeat_interval: float) -> Pace:
    """Heartbeats every ``heartbeat_interval``; after a failure, retried within a quarter of
    it (at most half a second), so that the first heartbeat after an outage comes soon after
    its end: a lease then survives any outage shorter than itself less those two."""
    return Pace(heartbeat_interval, Backoff(base=0.05, cap=min(heartbeat_interval / 4, 0.5)))


def reap_pace(reap_interval: float) -> Pace:
    """Reaps every ``reap_interval`` ± 20 %; after a failure, retried within an interval."""
    return Pace(reap_interval, Backoff(cap=reap_interval), spread=0.2)


def on_demand_pace() -> Pace:
    """Claims and records: made whenever needed, with the default back-off after failures."""
    return Pace(0.0, Backoff())
