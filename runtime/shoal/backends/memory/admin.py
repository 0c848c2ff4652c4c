"""The memory backend's admin primitives: reading, listing, retrying, cancelling and
purging tasks by id or by queue and status (what the board and the CLI call).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime

from shoal.backends.base import PURGEABLE, RETRYABLE, UNKNOWN_ASKER
from shoal.backends.shared.finishes import Finishes
from shoal.backends.shared.listing import TaskQuery
from shoal.backends.shared.wakeups import Wakeups
from shoal.core.models import CLAIMABLE, Task, TaskResult, TaskStatus, utcnow
from shoal.core.throughput import COUNTED, FinishCounts, Window, tally_times


class MemoryAdmin(abc.ABC):
    """Mixed into :class:`~shoal.backends.memory.backend.MemoryBackend`."""

    _tasks: dict[str, Task]
    _results: dict[str, TaskResult]
    _wakeups: Wakeups
    _finishes: Finishes

    @abc.abstractmethod
    def _existing(self, task_id: str) -> Task:
        """The task ``task_id``, or :class:`TaskNotFound`."""

    @abc.abstractmethod
    def _update(self, task: Task, **changes: object) -> Task:
        """Store ``task`` with ``changes`` and a new ``updated_at``."""

    async def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    async def list_page(self, query: TaskQuery) -> list[Task]:
        return query.page(list(self._tasks.values()))

    async def retry(self, task_id: str, *, run_at: datetime | None = None) -> bool:
        task = self._existing(task_id)
        if task.status not in RETRYABLE:
            return False
        self._update(
            task,
            status=TaskStatus.QUEUED,
            attempts=0,
            run_at=run_at or utcnow(),
            finished_at=None,
            cancelled_by=None,
        )
        self._results.pop(task_id, None)
        self._wakeups.work([task.queue])
        return True

    async def cancel(self, task_id: str, *, by: str = UNKNOWN_ASKER) -> bool:
        task = self._existing(task_id)
        if task.status is TaskStatus.RUNNING:
            self._update(task, cancelled_by=by)
        elif task.status in CLAIMABLE:
            self._update(task, status=TaskStatus.CANCELLED, finished_at=utcnow(), cancelled_by=by)
            self._finishes.finished([task_id])
        else:
            return False
        return True

    async def purge(self, *, queue: str | None, statuses: Sequence[TaskStatus]) -> int:
        doomed = [
            t.id
            for t in self._tasks.values()
            if t.status in PURGEABLE
            and t.status in statuses
            and (queue is None or t.queue == queue)
        ]
        for task_id in doomed:
            del self._tasks[task_id]
        return len(doomed)

    async def purge_tasks(self, task_ids: Sequence[str]) -> int:
        doomed = {i for i in task_ids if i in self._tasks and self._tasks[i].status in PURGEABLE}
        for task_id in doomed:
            del self._tasks[task_id]
        return len(doomed)

    async def count_finished(self, queue: str, window: Window) -> FinishCounts:
        finishes = [
            (t.status, t.finished_at)
            for t in self._tasks.values()
            if t.queue == queue and t.status in COUNTED and t.finished_at is not None
        ]
        return tally_times(queue, window, finishes)
