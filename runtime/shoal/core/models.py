"""The records every backend stores and returns.

Times are timezone-aware UTC datetimes at this boundary; each backend stores them however
suits it (epoch seconds in SQLite and Redis, ``timestamptz`` in PostgreSQL).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shoal.core.limits import NO_LIMITS, TaskLimits


def utcnow() -> datetime:
    return datetime.now(UTC)


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class TaskStatus(enum.StrEnum):
    """Where a task is in its life: queued → running → done | retrying | dead | cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    RETRYING = "retrying"
    DEAD = "dead"
    CANCELLED = "cancelled"


CLAIMABLE = frozenset({TaskStatus.QUEUED, TaskStatus.RETRYING})
"""Statuses a worker may claim once ``run_at`` has passed."""

UNFINISHED = CLAIMABLE | {TaskStatus.RUNNING}
"""Statuses that hold an idempotency key; a finished task frees its key."""


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task about to be pushed: everything the caller decides."""

    id: str
    queue: str
    name: str
    payload: bytes
    run_at: datetime
    max_attempts: int
    priority: int = 0
    idempotency_key: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    limits: TaskLimits = NO_LIMITS
    """Rate limit and concurrency key the claim enforces (:mod:`shoal.core.limits`)."""


@dataclass(frozen=True, slots=True)
class Task:
    """A stored task, as a backend returns it."""

    id: str
    queue: str
    name: str
    payload: bytes
    status: TaskStatus
    priority: int
    run_at: datetime
    attempts: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    idempotency_key: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    last_error: str | None = None
    lease_expirations: int = 0
    worker_id: str | None = None
    finished_at: datetime | None = None
    cancelled_by: str | None = None
    """Who cancelled the task, or asked to while it ran: then a running task is stopped
    by its worker within a heartbeat interval and ends ``cancelled``."""
    limits: TaskLimits = NO_LIMITS
    last_traceback: str | None = None
    """The traceback of the last failed attempt, bounded (:mod:`shoal.core.tracebacks`)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof of ownership of a running task.

    Every transition out of ``running`` names the lease; a backend applies it only while the
    task is still running under the same token and attempt, so a worker whose lease expired
    can never overwrite the result of the worker that took the task over.
    """

    task_id: str
    token: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Claim:
    """A task a worker has claimed, with the lease that fences what it may do next."""

    task: Task
    lease: Lease


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed attempt: retried at ``retry_at``, or dead when ``retry_at`` is None."""

    lease: Lease
    error: str
    retry_at: datetime | None
    traceback: str | None = None
    """Where the attempt failed, bounded; kept on the task as ``last_traceback``."""
    keep_until: datetime | None = None
    """When dead: keep the failure as the task's :class:`TaskResult` until then."""


@dataclass(frozen=True, slots=True)
class KeptValue:
    """A return value to keep with an ack: the encoded value and when it expires."""

    task_id: str
    value: bytes
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TaskResult:
    """How a task ended, as :meth:`~shoal.backends.base.Backend.result` reads it.

    A kept result (``value``, or a dead task's failure) lives apart from the task until
    ``expires_at``; a finished task without one is described from the task itself.
    """

    task_id: str
    status: TaskStatus
    """``done``, ``dead`` or ``cancelled``: a result is only ever final."""
    value: bytes | None = None
    """The encoded return value, when it was kept."""
    error: str | None = None
    """A dead task's last error, ``Type: message``."""
    traceback: str | None = None
    expires_at: datetime | None = None
    """When a kept result goes; None when read from the task itself."""
    cancelled_by: str | None = None
    """A cancelled task's ``cancelled_by``: who asked, when it is known."""


FINISHED = frozenset({TaskStatus.DONE, TaskStatus.DEAD, TaskStatus.CANCELLED})
"""Statuses a task never leaves on its own: what a wait for a result ends on."""


@dataclass(frozen=True, slots=True)
class HeartbeatReply:
    """What a heartbeat tells its worker about the leases it sent."""

    lost: tuple[str, ...] = ()
    """Tasks whose lease was already lost: stop reporting on them."""
    cancelling: Mapping[str, str] = field(default_factory=dict)
    """Tasks held whose cancel was asked for, each with who asked: stop them."""


@dataclass(frozen=True, slots=True)
class QueueStats:
    """How much work a queue holds; what the operator scales on."""

    queue: str
    ready: int = 0
    """Due now and waiting for a worker."""
    scheduled: int = 0
    """Delayed or waiting for a retry, not yet due: never a reason to scale up."""
    running: int = 0
    dead: int = 0
    oldest_ready_age: float | None = None
    """Seconds the oldest ready task has been due; None when nothing is ready."""
    held_back: int = 0
    """Of ``ready``, the tasks a rate limit or concurrency key holds back right now: waiting
    work no extra worker could start (:mod:`shoal.core.limits`)."""

    next_due_in: float | None = None
    """Seconds until the first scheduled task comes due (a schedule's tick, a delay, a
    retry); None when none is scheduled. The operator wakes a pool at zero ahead of it."""

    @property
    def runnable(self) -> int:
        """Ready tasks a free worker could claim now: what is worth scaling for."""
        return self.ready - self.held_back


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What a worker reports about itself on every heartbeat."""

    id: str
    """Unique to one process start; the host is recorded beside it, never used as the id."""
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    in_flight: int = 0
    started_at: datetime = field(default_factory=utcnow)
    last_seen: datetime = field(default_factory=utcnow)
    version: str = ""
    """The shoal version the worker runs (empty from one too old to say): a fleet half-way
    through an upgrade shows itself in ``shoal workers``."""


@dataclass(frozen=True, slots=True)
class ReapReport:
    """What one reap pass did with expired leases."""

    requeued: tuple[str, ...] = ()
    dead: tuple[str, ...] = ()


class HealthStatus(enum.StrEnum):
    """How a backend that answers is doing."""

    OK = "ok"
    DEGRADED = "degraded"
    """It serves, but something needs a person's attention: see the warnings."""


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """What a backend says about itself: what ``shoal check`` prints and a worker's health
    endpoint serves. A backend that cannot serve at all raises instead of returning one
    (:class:`~shoal.core.errors.BackendError`: unreachable, schema missing, data lost)."""

    details: Mapping[str, str] = field(default_factory=dict)
    """Facts worth showing, such as ``{"listener": "listening"}`` or
    ``{"persistence": "aof"}``."""
    warnings: tuple[str, ...] = ()
    """One line each: what is wrong and what follows from it."""
    durable: bool = True
    """Whether tasks the backend acknowledged survive a restart of its server (False for
    ``memory://`` and for a Redis with neither AOF nor RDB snapshots)."""

    @property
    def status(self) -> HealthStatus:
        return HealthStatus.DEGRADED if self.warnings else HealthStatus.OK
