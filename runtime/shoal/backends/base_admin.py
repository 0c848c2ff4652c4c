"""The admin part of the backend contract: reading, listing, retrying, cancelling and
purging tasks (what the board, the CLI and bulk repair call), with the defaults every
backend may keep (:meth:`AdminPrimitives.list_tasks`, :meth:`AdminPrimitives.retry_many`).
:class:`~shoal.backends.base.Backend` inherits it.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime

from shoal.backends.shared.listing import TaskQuery
from shoal.core.errors import IdempotencyConflict, TaskNotFound
from shoal.core.models import Task, TaskStatus

UNKNOWN_ASKER = "unknown"
"""``cancelled_by`` of a cancel whose caller did not say who asked."""


PURGEABLE = frozenset({TaskStatus.DONE, TaskStatus.DEAD, TaskStatus.CANCELLED})
"""Statuses :meth:`AdminPrimitives.purge` may delete; unfinished work is never purged."""

RETRYABLE = frozenset({TaskStatus.DEAD, TaskStatus.CANCELLED, TaskStatus.RETRYING})
"""Statuses :meth:`AdminPrimitives.retry` accepts."""


class AdminPrimitives(abc.ABC):
    """The admin primitives of :class:`~shoal.backends.base.Backend`."""

    @abc.abstractmethod
    async def get(self, task_id: str) -> Task | None:
        """One task by id, or None."""

    async def list_tasks(
        self,
        *,
        queue: str | None = None,
        statuses: Sequence[TaskStatus] = (),
        name: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: str | None = None,
        limit: int = 100,
    ) -> list[Task]:
        """Up to ``limit`` tasks, newest (highest id) first, filtered by queue, statuses
        (none: all), task name, and when their id was made (``since`` inclusive, ``until``
        exclusive: shoal's ids are UUIDv7, so a time range is a range of ids).

        Keyset pages: ``before`` is the last id of the previous page, and the next page holds
        only ids below it, so every page costs about the same however deep it is. A backend
        implements :meth:`list_page`.
        """
        chosen = tuple(sorted({TaskStatus(s) for s in statuses}))
        query = TaskQuery(queue, chosen, name, since, until, before, max(0, limit))
        return await self.list_page(query)

    @abc.abstractmethod
    async def list_page(self, query: TaskQuery) -> list[Task]:
        """One page of :meth:`list_tasks`: the tasks ``query`` selects, in its order
        (:mod:`shoal.backends.shared.listing` holds the filters and the order)."""

    @abc.abstractmethod
    async def retry(self, task_id: str, *, run_at: datetime | None = None) -> bool:
        """Queue a dead, cancelled or retrying task again with fresh attempts, forgetting the
        result it kept, if any (the next run's is the one to wait for), and who cancelled it.
        Returns False when the task is in another state. Raises :class:`TaskNotFound`."""

    @abc.abstractmethod
    async def cancel(self, task_id: str, *, by: str = UNKNOWN_ASKER) -> bool:
        """Cancel a task, recording ``by`` (who asked: ``user@host`` from the CLI, the
        signed-in user from the board) as its ``cancelled_by``.

        A queued, scheduled or retrying task ends ``cancelled`` at once. A running one is
        only marked: its worker learns of it from its next heartbeat and stops it (an async
        handler is cancelled, a plain function sees ``Context.cancel_requested``), and a
        worker that claims a task so marked (released or re-queued by a reap after the
        request) ends it without running it. A task that ends ``cancelled`` wakes its
        result's waiters. Returns False, changing nothing, when the task has finished
        already. Raises :class:`TaskNotFound`."""

    @abc.abstractmethod
    async def purge(self, *, queue: str | None, statuses: Sequence[TaskStatus]) -> int:
        """Delete finished tasks (done, dead, cancelled) and return how many."""

    async def retry_many(self, task_ids: Sequence[str]) -> int:
        """:meth:`retry` for a page of tasks (bulk repair): those of ``task_ids`` that are
        dead, cancelled or retrying are queued again, due now, with fresh attempts; tasks in
        another state and ids no task has are skipped. Returns how many were queued.

        This default retries one task per round trip, which is correct everywhere; a backend
        that can do a page in one round trip overrides it.
        """
        queued = 0
        for task_id in task_ids:
            try:
                queued += await self.retry(task_id)
            except (TaskNotFound, IdempotencyConflict):
                continue  # purged since it was selected, or a newer task holds its key
        return queued

    @abc.abstractmethod
    async def purge_tasks(self, task_ids: Sequence[str]) -> int:
        """Delete those of ``task_ids`` that are finished (done, dead, cancelled), in one
        round trip, and return how many; unfinished tasks and unknown ids are skipped.
        Bulk repair selects the ids with :meth:`list_tasks` and deletes them a page at a
        time."""
