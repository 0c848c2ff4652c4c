"""The SQLite backend's admin primitives: reading, listing, retrying, cancelling and purging
tasks, each change one ``BEGIN IMMEDIATE`` transaction (what the board and the CLI call).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from datetime import datetime

from shoal.backends.base import PURGEABLE, UNKNOWN_ASKER
from shoal.backends.shared.finishes import Finishes
from shoal.backends.shared.listing import TaskQuery, sql_page
from shoal.backends.shared.wakeups import Wakeups
from shoal.backends.sqlfiles import queries
from shoal.backends.sqlite.support import Runs, immediate, task_of
from shoal.core.errors import TaskNotFound
from shoal.core.models import Task, TaskStatus

_SQL = queries("shoal.backends.sqlite")


class SQLiteAdmin(Runs):
    """Mixed into :class:`~shoal.backends.sqlite.backend.SQLiteBackend`."""

    _wakeups: Wakeups
    _finishes: Finishes

    async def get(self, task_id: str) -> Task | None:
        row = await self._run(lambda db: db.execute(_SQL["get"], {"id": task_id}).fetchone())
        return None if row is None else task_of(row)

    async def list_page(self, query: TaskQuery) -> list[Task]:
        sql, arguments = sql_page(query, "shoal_tasks", lambda n: f"?{n}")
        rows = await self._run(lambda db: db.execute(sql, arguments).fetchall())
        return [task_of(row) for row in rows]

    async def _change(
        self, query: str, task_id: str, *, forget: bool = False, **arguments: object
    ) -> bool:
        """Apply ``query`` to one task; ``forget`` its kept result too if it applied."""

        def change(db: sqlite3.Connection) -> bool:
            with immediate(db):
                if db.execute(_SQL["exists"], {"id": task_id}).fetchone() is None:
                    raise TaskNotFound(task_id)
                cursor = db.execute(query, {"id": task_id, "now": time.time(), **arguments})
                changed = cursor.rowcount == 1
                if changed and forget:
                    db.execute(_SQL["forget_result"], {"id": task_id})
                return changed

        return await self._run(change)

    async def retry(self, task_id: str, *, run_at: datetime | None = None) -> bool:
        due = run_at.timestamp() if run_at else time.time()
        retried = await self._change(_SQL["retry"], task_id, run_at=due, forget=True)
        if retried:
            self._wakeups.work(None)
        return retried

    async def retry_many(self, task_ids: Sequence[str]) -> int:
        arguments = {"ids": json.dumps(list(task_ids)), "now": time.time()}

        def change(db: sqlite3.Connection) -> int:
            with immediate(db):
                retried = [row[0] for row in db.execute(_SQL["retry_many"], arguments)]
                db.execute(_SQL["forget_results"], {"ids": json.dumps(retried)})
                return len(retried)

        retried = await self._run(change)
        if retried:
            self._wakeups.work(None)
        return retried

    async def cancel(self, task_id: str, *, by: str = UNKNOWN_ASKER) -> bool:
        cancelled = await self._change(_SQL["cancel"], task_id, by=by)
        if cancelled:  # a running task is only marked: the hint just makes waiters look
            self._finishes.finished([task_id])
        return cancelled

    async def purge(self, *, queue: str | None, statuses: Sequence[TaskStatus]) -> int:
        chosen = json.dumps([str(s) for s in statuses if s in PURGEABLE])
        arguments = {"queue": queue, "statuses": chosen}
        return await self._run(lambda db: db.execute(_SQL["purge"], arguments).rowcount)

    async def purge_tasks(self, task_ids: Sequence[str]) -> int:
        arguments = {"ids": json.dumps(list(task_ids))}
        return await self._run(lambda db: db.execute(_SQL["purge_ids"], arguments).rowcount)
