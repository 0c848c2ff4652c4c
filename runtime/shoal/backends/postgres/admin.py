"""The PostgreSQL backend's admin primitives: reading, listing, retrying, cancelling and
purging tasks, each one statement of ``queries.sql`` (what the board and the CLI call).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from shoal.backends.base import PURGEABLE, UNKNOWN_ASKER
from shoal.backends.postgres.connect import Connections
from shoal.backends.postgres.rows import affected, task_of
from shoal.backends.shared.finishes import Finishes
from shoal.backends.shared.listing import TaskQuery, sql_page
from shoal.backends.shared.retention import PRUNE_BATCH
from shoal.core.errors import IdempotencyConflict, TaskNotFound
from shoal.core.models import Task, TaskStatus


class PostgresAdmin(abc.ABC):
    """Mixed into :class:`~shoal.backends.postgres.backend.PostgresBackend`."""

    _db: Connections
    _sql: dict[str, str]
    _finishes: Finishes

    @abc.abstractmethod
    def _render(self, sql: str) -> str:
        """``sql`` with this backend's schema and channels filled in."""

    async def get(self, task_id: str) -> Task | None:
        async with self._db.acquire("get") as conn:
            row = await conn.fetchrow(self._sql["get"], task_id)
        return None if row is None else task_of(row)

    async def list_page(self, query: TaskQuery) -> list[Task]:
        sql, arguments = sql_page(query, f"{self._render('{schema}')}.tasks", lambda n: f"${n}")
        async with self._db.acquire("listing tasks") as conn:
            rows = await conn.fetch(sql, *arguments)
        return [task_of(row) for row in rows]

    async def retry(self, task_id: str, *, run_at: datetime | None = None) -> bool:
        async with self._db.acquire("retry") as conn:
            try:
                row = await conn.fetchrow(self._sql["retry"], task_id, run_at)
            except asyncpg.UniqueViolationError as exc:
                # A newer task took the key this one held before it finished.
                held = await conn.fetchrow(self._sql["get"], task_id)
                raise IdempotencyConflict(held["queue"], [held["idempotency_key"]], 1) from exc
        if not row["found"]:
            raise TaskNotFound(task_id)
        return bool(row["revived"])

    async def retry_many(self, task_ids: Sequence[str]) -> int:
        async with self._db.acquire("retry") as conn:
            row = await conn.fetchrow(self._sql["retry_many"], list(task_ids))
        return int(row["revived"])

    async def cancel(self, task_id: str, *, by: str = UNKNOWN_ASKER) -> bool:
        async with self._db.acquire("cancel") as conn:
            row = await conn.fetchrow(self._sql["cancel"], task_id, by)
        if not row["found"]:
            raise TaskNotFound(task_id)
        if row["cancelled"]:
            self._finishes.finished([task_id])
        return bool(row["cancelled"])

    async def purge(self, *, queue: str | None, statuses: Sequence[TaskStatus]) -> int:
        doomed = sorted(str(s) for s in set(statuses) & PURGEABLE)
        if not doomed:
            return 0
        total = 0
        async with self._db.acquire("purge") as conn:
            while True:  # bounded: every batch deletes rows, or the loop ends
                deleted = affected(
                    await conn.execute(self._sql["purge"], doomed, queue, PRUNE_BATCH)
                )
                total += deleted
                if deleted < PRUNE_BATCH:
                    return total

    async def purge_tasks(self, task_ids: Sequence[str]) -> int:
        async with self._db.acquire("purge") as conn:
            return affected(await conn.execute(self._sql["purge_ids"], list(task_ids)))
