"""The records of schedules that every backend stores and returns.

A schedule's *watermark* (``next_tick_at``) is its de-duplication record: the moment of the
last tick materialised for it. A backend moves it only forward, only from the value the
caller names, and in the same operation that pushes the tick's task, so each tick of a
schedule becomes one task however many workers and processes materialise it, and the record
outlives the task (an idempotency key does not: it is freed when its task finishes).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

SCHEDULE_KEY = "shoal.schedule"
"""The metadata key naming the schedule a tick's task belongs to."""
TICK_KEY = "shoal.tick"
"""The metadata key holding the tick's moment (ISO 8601, UTC): its scheduled time."""


class ScheduleState(enum.StrEnum):
    """Whether a schedule's ticks run."""

    ACTIVE = "active"
    PAUSED = "paused"
    """Paused by a person (``shoal schedules pause``): a tick that comes due does not run and
    materialises no next one until ``resume``."""
    RETIRED = "retired"
    """No longer declared by its app: the last registration left it out."""


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """What an app declares about one schedule; registration stores it."""

    name: str
    """Unique in the backend, across apps (by default the task's name)."""
    task: str
    queue: str
    cadence: str
    """How the schedule reads (``cron */5 * * * * Europe/Paris``, ``every 60s``): for people."""


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A stored schedule, as a backend returns it."""

    name: str
    app: str
    task: str
    queue: str
    cadence: str
    state: ScheduleState
    next_tick_at: datetime | None = None
    """The watermark: the last tick materialised (the next to run while it is pending)."""
    next_task_id: str | None = None
    """The task of that tick."""
    pending: bool = False
    """Whether that task is still unfinished. An active schedule that is not pending has
    lost its chain (its tick was cancelled or ended dead): registration repairs it."""
    last_run_at: datetime | None = None
    """The newest tick whose handler was started."""


class Advance(enum.StrEnum):
    """What :meth:`~shoal.backends.base.Backend.advance_schedule` did."""

    ADVANCED = "advanced"
    """The watermark was where the caller said: the tick was pushed and the watermark moved."""
    STALE = "stale"
    """The watermark had moved already (another process materialised that tick): nothing
    was pushed."""
    PAUSED = "paused"
    """The schedule is paused: nothing was pushed."""
    RETIRED = "retired"
    """The schedule is retired or unknown: nothing was pushed."""
