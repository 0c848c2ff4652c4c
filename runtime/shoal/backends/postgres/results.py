"""The PostgreSQL backend's results: how a task ended, read in one statement from its kept
result or from the task itself, and the wait for it, woken by NOTIFY on the results channel.
"""

from __future__ import annotations

import abc

from shoal.backends.postgres.connect import Connections
from shoal.backends.postgres.rows import task_of
from shoal.backends.shared.finishes import Finishes
from shoal.backends.shared.results import outcome_of
from shoal.core.errors import TaskNotFound
from shoal.core.models import TaskResult, TaskStatus


class PostgresResults(abc.ABC):
    """Mixed into :class:`~shoal.backends.postgres.backend.PostgresBackend`."""

    _db: Connections
    _sql: dict[str, str]
    _finishes: Finishes

    @abc.abstractmethod
    async def _start_listener(self, *, results: bool = False) -> None:
        """Listen for work, and for finished tasks too once ``results`` is asked for."""

    async def result(self, task_id: str) -> TaskResult | None:
        async with self._db.acquire("reading a result") as conn:
            row = await conn.fetchrow(self._sql["result"], task_id)
        if row["kept_status"] is not None:
            return TaskResult(
                task_id,
                TaskStatus(row["kept_status"]),
                row["kept_value"],
                row["kept_error"],
                row["kept_traceback"],
                row["kept_expires_at"],
            )
        if row["id"] is None:
            raise TaskNotFound(task_id)
        return outcome_of(task_of(row))

    async def wait_for_result(self, task_id: str, timeout: float) -> TaskResult | None:
        """Wait for a NOTIFY on the results channel naming the task (on the LISTEN
        connection that wakes workers: one connection for every waiter), looking at the
        result after each, or the timeout."""
        await self._start_listener(results=True)
        return await self._finishes.wait_for_result(task_id, timeout, lambda: self.result(task_id))
