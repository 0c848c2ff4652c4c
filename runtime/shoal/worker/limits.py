"""A worker's side of limits: its own rate (``--rate-limit``), and looking again for work
that the backend's limits held back.

Limits for all workers together are the backend's, enforced in ``claim`` (a held-back task
never reaches a worker). Two things remain for the worker: apalis's per-worker rate limit,
a token bucket of this process that caps what it starts and therefore what it claims (a task
it could not start would sit in its slot while other workers could run it); and, since a
rate bucket refills without any wake-up, claiming again at the rates' recheck interval
(:attr:`shoal.core.limits.Rate.recheck_interval`) rather than only every poll interval.
"""

from __future__ import annotations

from collections.abc import Iterable

from shoal.app import App
from shoal.app.limits import recheck_interval
from shoal.core.limits import Rate, TokenBucket


class WorkerLimits:
    def __init__(self, app: App, queues: Iterable[str], rate_limit: str | None, now: float) -> None:
        self._own = None if rate_limit is None else TokenBucket(Rate.parse(rate_limit), now)
        self._recheck = recheck_interval(
            ((t.options.queue, t.options.limits) for t in app.tasks.values()),
            app.queue_rates,
            queues,
        )

    def claimable(self, wanted: int, claimed: int, now: float) -> int:
        """Of ``wanted``, what to claim when ``claimed`` tasks wait to start already."""
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
        if self._recheck is not None:
            due.append(now + self._recheck)
        if self._own is not None and self._own.available(now) < 1:
            due.append(now + self._own.wait(now))
        return due
