"""The backend contract: the ten primitives every storage of tasks implements.

The line sits at the level of the domain, not of queries: Redis is not SQL. Behaviour shared
by every backend (payload codecs, the retry policy, hooks, metrics) lives above this line, in
the app and the worker, and is written once; the rules every backend applies alike (the
reap rule, lost leases, idempotency keys, what text a task may hold) live beside them in
:mod:`shoal.backends.shared`. One contract test suite (:mod:`shoal.testing.contract`) runs
unchanged against every implementation, and ``docs/backends.md`` explains the contract to
the authors of other backends.

Semantics, following apalis:

- **At least once.** A claimed task runs until its worker acks or fails it. If the worker
  dies its lease expires and :meth:`Backend.reap` puts the task back, so a task may run
  more than once: handlers must be idempotent.
- **Atomic claims.** Two workers never hold the same task at the same time.
- **Fencing.** Every transition out of ``running`` names the :class:`~shoal.core.models.Lease`
  it was claimed with; a stale lease is rejected with :class:`~shoal.core.errors.LeaseLost`.
- **Order.** Highest priority first, then earliest ``run_at``, then id (FIFO).
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping, Sequence
from typing import Any

from shoal.backends.base_admin import PURGEABLE as PURGEABLE
from shoal.backends.base_admin import RETRYABLE as RETRYABLE
from shoal.backends.base_admin import UNKNOWN_ASKER as UNKNOWN_ASKER
from shoal.backends.base_admin import AdminPrimitives
from shoal.backends.base_schedules import SchedulePrimitives
from shoal.backends.base_throughput import ThroughputPrimitives
from shoal.core.models import (
    BackendHealth,
    Claim,
    Failure,
    HeartbeatReply,
    KeptValue,
    Lease,
    NewTask,
    QueueStats,
    ReapReport,
    TaskResult,
    WorkerInfo,
)
from shoal.core.retention import Retention


class OnConflict(enum.StrEnum):
    """What :meth:`Backend.push` does with an idempotency key an unfinished task holds."""

    RAISE = "raise"
    """Enqueue nothing and raise :class:`~shoal.core.errors.IdempotencyConflict`."""
    SKIP = "skip"
    """Enqueue the rest and return the id of the task already holding the key."""


class Backend(ThroughputPrimitives, SchedulePrimitives, AdminPrimitives, abc.ABC):
    """Where tasks live. One instance may serve any number of queues and apps."""

    url: str
    """The URL the backend was opened with, password redacted: safe to log."""

    # -- lifecycle ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect. Raises :class:`BackendUnavailable` with the redacted URL on failure."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; the backend may be opened again afterwards."""

    @abc.abstractmethod
    async def setup(self) -> None:
        """Create or migrate the schema. Safe to run again and from several processes."""

    @abc.abstractmethod
    async def verify_schema(self) -> None:
        """Raise :class:`SchemaMissing` naming what is missing, or return if all is there."""

    async def health(self) -> BackendHealth:
        """Whether the backend can serve, and what a person should know about it.

        Raises a :class:`~shoal.core.errors.BackendError` when it cannot serve (unreachable,
        schema missing, data lost); otherwise returns what ``shoal check`` prints and a
        worker's health endpoint serves: details (a listener's state, the server's
        persistence) and warnings. Nothing outside a backend looks further into it.
        This default verifies the schema; backends with more to say override it.
        """
        await self.verify_schema()
        return BackendHealth()

    # -- producers ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def push(
        self, tasks: Sequence[NewTask], *, on_conflict: OnConflict = OnConflict.RAISE
    ) -> list[str]:
        """Store ``tasks`` all or nothing, in one round trip; return their ids in order.

        A task whose text no backend can store (a NUL character, a lone surrogate) is
        refused with :class:`InvalidTask` before the store is touched
        (:func:`shoal.backends.shared.storable.check_storable`).

        Idempotency keys are unique per queue among unfinished tasks. With
        ``OnConflict.RAISE`` a batch that reuses one (or repeats one within itself) stores
        nothing and raises :class:`IdempotencyConflict` naming every conflicting key; with
        ``OnConflict.SKIP`` the id of the task holding the key is returned in its place
        (:mod:`shoal.backends.shared.idempotency`).
        """

    # -- workers -----------------------------------------------------------------------------

    @abc.abstractmethod
    async def claim(
        self, queues: Sequence[str], worker_id: str, limit: int, lease_seconds: float
    ) -> list[Claim]:
        """Atomically take up to ``limit`` due tasks, best first, leased for ``lease_seconds``.

        Each claim counts one attempt. Returns at most ``limit`` claims, possibly none.
        """

    @abc.abstractmethod
    async def ack(self, leases: Sequence[Lease], results: Sequence[KeptValue] = ()) -> None:
        """Mark tasks done. Applies every valid lease; then raises :class:`LeaseLost` naming
        the tasks whose lease was no longer theirs.

        ``results`` are return values to keep (see :meth:`result`), stored with the ack of
        their task's lease and not otherwise; each task that keeps one wakes its waiters.
        """

    @abc.abstractmethod
    async def fail(self, failures: Sequence[Failure]) -> None:
        """Record failed attempts: ``retrying`` until ``retry_at``, or ``dead`` without one.
        Stale leases are reported with :class:`LeaseLost` as in :meth:`ack`.

        The task keeps the failure's ``traceback`` as ``last_traceback``. A dead failure
        with ``keep_until`` is also kept as the task's result (see :meth:`result`); every
        dead task wakes its waiters.
        """

    @abc.abstractmethod
    async def release(self, leases: Sequence[Lease]) -> None:
        """Give back unfinished tasks (shutdown) as queued, without charging the attempt.
        Stale leases are skipped silently: someone else owns those tasks now."""

    @abc.abstractmethod
    async def heartbeat(
        self, worker: WorkerInfo, leases: Sequence[Lease], lease_seconds: float
    ) -> HeartbeatReply:
        """Record the worker as alive and extend its leases by ``lease_seconds`` from now.

        Replies with the ids of tasks whose lease was already lost, which the worker should
        stop reporting on, and, among the tasks whose lease it still holds, those whose
        cancel was asked for (:meth:`cancel`), each with who asked: the worker stops them.
        """

    @abc.abstractmethod
    async def cancel_running(self, leases: Sequence[Lease]) -> None:
        """Mark running tasks ``cancelled`` (finished now), the outcome of an attempt that
        stopped on a cancel request; who asked stays recorded, and their result's waiters
        wake as on :meth:`cancel`. Stale leases are reported with :class:`LeaseLost` as in
        :meth:`ack`."""

    @abc.abstractmethod
    async def deregister(self, worker_id: str) -> None:
        """Forget a worker that stopped cleanly."""

    @abc.abstractmethod
    async def reap(
        self, *, worker_timeout: float, retention: Mapping[str, Retention] | None = None
    ) -> ReapReport:
        """Put back running tasks whose lease expired, counting a lease expiration.

        A task whose attempts are spent ends dead with "lease expired N times: ...", so a
        task that kills its worker cannot loop forever (the rule and its words:
        :mod:`shoal.backends.shared.reaping`). Workers not seen for ``worker_timeout``
        seconds are forgotten.

        ``retention`` names queues and how long their finished tasks are kept: tasks of
        those queues that finished longer ago than their status is kept for are deleted,
        oldest first, at most :data:`~shoal.backends.shared.retention.PRUNE_PER_REAP` per
        call (the next reap goes on), in statements of at most
        :data:`~shoal.backends.shared.retention.PRUNE_BATCH`. Queues it does not name are
        left alone: a worker prunes the queues it serves, by its app's rules.
        """

    @property
    def default_retention(self) -> Retention:
        """The retention of a queue whose app declares none: 7 days for done and cancelled
        tasks, 30 for dead ones. A backend with its own configured default (PostgreSQL's
        ``retention`` URL option) overrides it."""
        return Retention()

    # -- observers ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def stats(self, queues: Sequence[str]) -> dict[str, QueueStats]:
        """Depth figures for every queue named, in one round trip (missing queues are zero)."""

    @abc.abstractmethod
    async def queues(self) -> list[str]:
        """Every queue that holds at least one task, sorted."""

    @abc.abstractmethod
    async def workers(self) -> list[WorkerInfo]:
        """Every registered worker, with what it last reported."""

    @abc.abstractmethod
    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        """Return when work may have arrived on ``queues``, or after ``timeout`` seconds.

        A wake-up is a hint, not a promise: the caller claims to find out. Backends wake on
        their own push at once and on other processes' pushes as fast as they can, and a
        hint that arrives after a claim of ``queues`` started and before this wait ends it
        at once (none is lost between an empty claim and the next wait). Every backend
        implements it with :class:`shoal.backends.shared.wakeups.Wakeups`.
        """

    # -- results -----------------------------------------------------------------------------

    @abc.abstractmethod
    async def result(self, task_id: str) -> TaskResult | None:
        """How a task ended, or None while it has not.

        A result kept by :meth:`ack` or :meth:`fail` is stored apart from the task, so it
        outlives a purge of the task, until its ``expires_at``; the backend itself removes it
        then (a key's time to live, or a delete in the course of its normal work) and never
        returns an expired one. Without a kept result, a finished task (done, dead or
        cancelled) is described from itself. Raises :class:`TaskNotFound` when there is
        neither task nor result.
        """

    @abc.abstractmethod
    async def wait_for_result(self, task_id: str, timeout: float) -> TaskResult | None:
        """:meth:`result`, once there is one, or None after ``timeout`` seconds.

        Woken by the backend's own hints of finished tasks, with polling only as the
        fallback, and every waiter of one backend instance shares one source of hints:
        every backend implements it with
        :class:`shoal.backends.shared.finishes.Finishes`. Raises :class:`TaskNotFound` as
        :meth:`result` does.
        """

    async def __aenter__(self) -> Backend:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class TransactionalPush(abc.ABC):
    """A backend that can also enqueue inside a caller's open transaction (the outbox
    pattern: commit enqueues, rollback enqueues nothing and wakes nobody).

    Only PostgreSQL does today. ``App.push_many(..., connection=conn)`` and
    ``task.configure(connection=conn)`` (``push``, or ``push_sync`` for a sync connection)
    come here; on a backend without this capability they raise :class:`ConfigurationError`.
    """

    @abc.abstractmethod
    async def push_in_transaction(
        self,
        connection: Any,
        tasks: Sequence[NewTask],
        *,
        on_conflict: OnConflict = OnConflict.RAISE,
    ) -> list[str]:
        """:meth:`Backend.push`, on ``connection`` (a driver connection with an open
        transaction, of a kind the backend names) and inside that transaction."""

    @abc.abstractmethod
    def push_in_transaction_sync(
        self,
        connection: Any,
        tasks: Sequence[NewTask],
        *,
        on_conflict: OnConflict = OnConflict.RAISE,
    ) -> list[str]:
        """:meth:`push_in_transaction` on a sync connection: in the caller's thread, on the
        caller's connection, blocking as the caller's own statements do, with no event loop."""
