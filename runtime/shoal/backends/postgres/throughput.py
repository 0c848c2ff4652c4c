"""The PostgreSQL backend's throughput: finishes per minute of a window, one grouped read
of the partial finish-time indexes (tasks_finished, tasks_dead)."""

from __future__ import annotations

import abc

from shoal.backends.postgres.connect import Connections
from shoal.core.throughput import FinishCounts, Window, tally


class PostgresThroughput(abc.ABC):
    """Mixed into :class:`~shoal.backends.postgres.backend.PostgresBackend`."""

    _db: Connections
    _sql: dict[str, str]

    async def count_finished(self, queue: str, window: Window) -> FinishCounts:
        async with self._db.acquire("counting finishes") as conn:
            rows = await conn.fetch(self._sql["count_finished"], queue, window.start, window.end)
        return tally(queue, window, [(row["status"], row["bucket"], row["n"]) for row in rows])
