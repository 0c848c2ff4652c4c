"""Retention: how long finished tasks are kept before the backend deletes them.

Pure rules only; each backend enforces them during :meth:`~shoal.backends.base.Backend.reap`
(bounded deletes in SQL, a bounded sweep of a by-finish-time index in Redis), so storage
stays bounded without a separate process. Results are not tasks: they keep their own time
to live.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta

from shoal.core.models import TaskStatus


@dataclass(frozen=True, slots=True)
class Retention:
    """How long a finished task is kept after it finished; ``None`` keeps it until purged.

    ``App(..., retention=Retention(done=timedelta(days=1)))`` sets the default of an app's
    queues; ``app.queue_options("emails", retention=...)`` sets one queue's.
    """

    done: timedelta | None = timedelta(days=7)
    """Succeeded and cancelled tasks: a week covers a weekend's investigation without
    letting storage grow with every task ever run."""
    dead: timedelta | None = timedelta(days=30)
    """Dead tasks are kept longer: each one is work that did not happen, waiting for a person
    to read its error and retry or purge it."""

    def __post_init__(self) -> None:
        for name in ("done", "dead"):
            kept = getattr(self, name)
            if kept is not None and kept < timedelta(0):
                raise ValueError(f"Retention.{name} must not be negative (got {kept})")

    def kept_for(self, status: TaskStatus) -> timedelta | None:
        """How long a task finished with ``status`` is kept (None: until purged)."""
        if status in (TaskStatus.DONE, TaskStatus.CANCELLED):
            return self.done
        if status is TaskStatus.DEAD:
            return self.dead
        raise ValueError(f"{status} is not a finished status: such tasks are never deleted")


FINISHED = (TaskStatus.DONE, TaskStatus.CANCELLED, TaskStatus.DEAD)
"""The statuses retention deletes; unfinished work is never deleted."""


@dataclass(frozen=True, slots=True)
class Expiry:
    """One rule a backend applies: tasks of ``queue`` finished with ``status`` at least
    ``seconds`` ago go."""

    queue: str
    status: TaskStatus
    seconds: float


def expiries(retention: Mapping[str, Retention]) -> Iterator[Expiry]:
    """The rules for ``retention`` (queue -> its retention), queue by queue, in status order;
    statuses kept until purged have none."""
    for queue in sorted(retention):
        for status in FINISHED:
            kept = retention[queue].kept_for(status)
            if kept is not None:
                yield Expiry(queue, status, kept.total_seconds())
