"""Prometheus metrics of workers, counted a batch at a time.

Counting one claim or one batch of outcomes with one ``inc(n)`` per queue and task name,
rather than several calls per task, keeps the metrics off the per-task path: each call is a
locked update, and with no-op tasks they were a tenth of the worker's time.
"""

from __future__ import annotations

import functools
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from shoal.app.periodic import TickStart
from shoal.core.models import Claim
from shoal.core.schedule_records import SCHEDULE_KEY
from shoal.worker.execution import Outcome

_LABELS = ("queue", "task")

STARTED = Counter("shoal_tasks_started", "Attempts started.", _LABELS)
SUCCEEDED = Counter("shoal_tasks_succeeded", "Attempts that succeeded.", _LABELS)
FAILED = Counter("shoal_tasks_failed", "Attempts that failed (retried or dead).", _LABELS)
RETRIED = Counter("shoal_tasks_retried", "Failed attempts that will be retried.", _LABELS)
DEAD = Counter("shoal_tasks_dead", "Tasks that ended dead.", _LABELS)
RELEASED = Counter("shoal_tasks_released", "Unfinished tasks given back at shutdown.", _LABELS)
CANCELLED = Counter(
    "shoal_tasks_cancelled", "Running tasks stopped because someone cancelled them.", _LABELS
)
DURATION = Histogram(
    "shoal_task_duration_seconds",
    "Run time of attempts.",
    _LABELS,
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
IN_FLIGHT = Gauge("shoal_tasks_in_flight", "Attempts running now.", ("queue",))
CLAIM_LATENCY = Histogram(
    "shoal_claim_latency_seconds",
    "Time one claim round trip takes.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
DISCARDED = Counter(
    "shoal_tasks_discarded",
    "Finished attempts whose outcome the backend refused: the lease was lost, another "
    "worker owns the task now.",
    _LABELS,
)

TICKS_RUN = Counter("shoal_ticks_run", "Ticks of schedules whose handler started.", ("schedule",))
TICKS_LATE = Counter(
    "shoal_ticks_late",
    "Ticks that started after their grace: the missed-tick policy applied.",
    ("schedule",),
)
TICKS_SKIPPED = Counter(
    "shoal_ticks_skipped",
    "Ticks not run: skipped by the missed-tick policy, or their schedule paused or retired.",
    ("schedule",),
)

_ENDED = {
    "task_succeeded": (SUCCEEDED,),
    "task_retrying": (FAILED, RETRIED),
    "task_dead": (FAILED, DEAD),
    "task_released": (RELEASED,),
    "task_discarded": (DISCARDED,),
    "task_cancelled": (CANCELLED,),
}


@functools.lru_cache(maxsize=4096)
def _series(metric: Any, *labels: str) -> Any:
    """One labelled series; cached, as ``labels()`` is itself a locked lookup."""
    return metric.labels(*labels)


def started(claims: Iterable[Claim]) -> None:
    """Count the attempts of a batch that start now."""
    tally = Tally((claim.task.queue, claim.task.name) for claim in claims)
    queues: Tally[str] = Tally()
    for (queue, name), count in tally.items():
        _series(STARTED, queue, name).inc(count)
        queues[queue] += count
    for queue, count in queues.items():
        _series(IN_FLIGHT, queue).inc(count)


def ended(outcomes: Iterable[Outcome]) -> None:
    """Count a batch of finished attempts, once stored (or discarded by the lease fence):
    successes, failures, releases, discards."""
    tally: Tally[tuple[str, str, str]] = Tally()
    queues: Tally[str] = Tally()
    for outcome in outcomes:
        task = outcome.claim.task
        tally[task.queue, task.name, outcome.event_name] += 1
        queues[task.queue] += 1
        if not outcome.released:
            _series(DURATION, task.queue, task.name).observe(outcome.duration)
        if outcome.tick is not None and not outcome.discarded:
            _count_tick(task.metadata[SCHEDULE_KEY], outcome.tick)
    for (queue, name, event), count in tally.items():
        for counter in _ENDED[event]:
            _series(counter, queue, name).inc(count)
    for queue, count in queues.items():
        _series(IN_FLIGHT, queue).dec(count)


def _count_tick(schedule: str, tick: TickStart) -> None:
    if tick.run:
        _series(TICKS_RUN, schedule).inc()
    if tick.late:
        _series(TICKS_LATE, schedule).inc()
    if tick.skipped:
        _series(TICKS_SKIPPED, schedule).inc(tick.skipped)
