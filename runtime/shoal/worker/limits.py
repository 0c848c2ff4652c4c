"""A worker's side of limits: its own rate (``--rate-limit``), and looking again for work
that the backend's limits held back.

Limits for all workers together are the backend's, enforced in ``claim`` (a held-back task
never reaches a worker). Two things remain for the worker: apalis's per-worker rate limit,
a token bucket of this process that caps what it starts and therefore what it claims (a task
it could not start would sit in its slot while other workers could run it); and the pace of
claims under the backend's rate limits: a bucket refills without any wake-up, so a claim
that came back short is followed by the next one after the rates' recheck interval
(:attr:`shoal.core.limits.Rate.recheck_interval`), not at the poll interval, and not at once
either (every finished task would start one, each reading past the held-back tasks).
"""

from __future__ import annotations

from collections.abc import Iterable

from shoal.app import App
from shoal.app.limits import claim_cap, recheck_interval
from shoal.core.limits import Rate, TokenBucket


class WorkerLimits:
    def __init__(self, app: App, queues: Iterable[str], rate_limit: str | None, now: float) -> None:
        self._own = None if rate_limit is None else TokenBucket(Rate.parse(rate_limit), now)
        specs = [(t.options.queue, t.options.limits) for t in app.tasks.values()]
        self._recheck = recheck_interval(specs, app.queue_rates, queues)
        self._cap = claim_cap(specs, app.queue_rates, queues)
        self._next_claim = 0.0

    def claimed(self, got: int, asked: int, now: float) -> bool:
        """A claim came back; True when it came back short under rate limits, which may
        have held work back: the next claim comes after the recheck interval (in place of
        waiting for a wake-up or the poll interval)."""
        if self._recheck is None or got >= asked:
            return False
        self._next_claim = now + self._recheck
        return True

    def may_claim(self, now: float) -> bool:
        return now >= self._next_claim

    def claimable(self, wanted: int, claimed: int, now: float) -> int:
        """Of ``wanted``, what to claim when ``claimed`` tasks wait to start already."""
        if self._cap is not None:
            wanted = min(wanted, self._cap)
        if self._own is None:
            return wanted
        return min(wanted, self._own.available(now) - claimed)

    def startable(self, free: int, now: float) -> int:
        return free if self._own is None else min(free, self._own.available(now))

    def started(self, count: int, now: float) -> None:
        if self._own is not None:
            self._own.take(count, now)

    def due(self, now: float) -> list[float]:
        """When the loop should turn again for the limits' sake, at the latest."""
        due = []
        if self._next_claim > now:
            due.append(self._next_claim)
        if self._own is not None and self._own.available(now) < 1:
            due.append(now + self._own.wait(now))
        return due
