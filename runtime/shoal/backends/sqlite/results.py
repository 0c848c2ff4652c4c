"""The SQLite backend's results: how a task ended, read from its kept result or from the
task itself, and the wait for it, woken by this instance's acks and other processes' commits.
"""

from __future__ import annotations

import abc
import sqlite3
import time

from shoal.backends.shared.finishes import Finishes
from shoal.backends.shared.results import outcome_of
from shoal.backends.sqlfiles import queries
from shoal.backends.sqlite.support import Runs, result_of, task_of
from shoal.backends.sqlite.watcher import CommitWatcher
from shoal.core.errors import TaskNotFound
from shoal.core.models import Task, TaskResult

_SQL = queries("shoal.backends.sqlite")


class SQLiteResults(Runs):
    """Mixed into :class:`~shoal.backends.sqlite.backend.SQLiteBackend`."""

    _finishes: Finishes
    _watcher: CommitWatcher

    @abc.abstractmethod
    async def _watch_commits(self) -> None:
        """Start the watcher of other processes' commits, once open."""

    async def result(self, task_id: str) -> TaskResult | None:
        arguments = {"id": task_id, "now": time.time()}

        def read(db: sqlite3.Connection) -> TaskResult | Task | None:
            # The task first: a result is stored in the same commit as its task's end, so
            # whatever commits between the two reads, the result read second is never older.
            task = db.execute(_SQL["get"], arguments).fetchone()
            row = db.execute(_SQL["result"], arguments).fetchone()
            if row is not None:
                return result_of(row)
            return None if task is None else task_of(task)

        found = await self._run(read)
        if found is None:
            raise TaskNotFound(task_id)
        return found if isinstance(found, TaskResult) else outcome_of(found)

    async def wait_for_result(self, task_id: str, timeout: float) -> TaskResult | None:
        """Wait for an ack or a fail through this instance, a commit by another connection
        (the watcher's hint), or the timeout, looking at the result after each."""
        await self._watch_commits()
        with self._watcher.attending():
            return await self._finishes.wait_for_result(
                task_id, timeout, lambda: self.result(task_id)
            )
