"""Throughput: tasks finished done and dead per minute over the last hour, per queue.

The bucketing is written once here; a backend only counts finishes in a :class:`Window`
(``count_finished``), by rows of ``(status, bucket, count)`` from SQL, by one count per
bucket from Redis's finish-time index, or by finish times it holds in memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shoal.core.models import TaskStatus, from_epoch

MINUTE = 60.0
WINDOW_MINUTES = 60

COUNTED = (TaskStatus.DONE, TaskStatus.DEAD)
"""The finishes counted: work done and work given up on (cancelled is neither)."""


@dataclass(frozen=True)
class Window:
    """``minutes`` buckets of a minute each from ``start`` (epoch seconds, a whole minute);
    the last holds the current, partial minute."""

    start: float
    minutes: int = WINDOW_MINUTES

    @classmethod
    def ending(cls, now: float, minutes: int = WINDOW_MINUTES) -> Window:
        """The window whose last bucket is the minute ``now`` falls in."""
        return cls((math.floor(now / MINUTE) - minutes + 1) * MINUTE, minutes)

    @property
    def end(self) -> float:
        """The first instant past the window (exclusive)."""
        return self.start + self.minutes * MINUTE

    def index(self, at: float) -> int | None:
        """The bucket ``at`` (epoch seconds) falls in, or None outside the window."""
        if not self.start <= at < self.end:
            return None
        return min(int((at - self.start) // MINUTE), self.minutes - 1)


@dataclass(frozen=True)
class FinishCounts:
    """One queue's finishes per minute, oldest minute first."""

    queue: str
    start: datetime
    done: tuple[int, ...]
    dead: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "minute_seconds": int(MINUTE),
            "done": list(self.done),
            "dead": list(self.dead),
        }


def tally(queue: str, window: Window, rows: Iterable[tuple[str, int, int]]) -> FinishCounts:
    """Counts from rows of ``(status, bucket, count)``; rows outside the window or of other
    statuses are ignored, repeated buckets add up."""
    counts = {status.value: [0] * window.minutes for status in COUNTED}
    for status, bucket, count in rows:
        per_minute = counts.get(str(status))
        if per_minute is not None and 0 <= bucket < window.minutes:
            per_minute[bucket] += int(count)
    return FinishCounts(
        queue,
        from_epoch(window.start),
        tuple(counts[TaskStatus.DONE.value]),
        tuple(counts[TaskStatus.DEAD.value]),
    )


def tally_times(
    queue: str, window: Window, finishes: Iterable[tuple[TaskStatus, datetime]]
) -> FinishCounts:
    """Counts from finish times (backends that hold their tasks in hand)."""
    rows = []
    for status, finished_at in finishes:
        bucket = window.index(finished_at.timestamp())
        if bucket is not None:
            rows.append((TaskStatus(status).value, bucket, 1))
    return tally(queue, window, rows)
