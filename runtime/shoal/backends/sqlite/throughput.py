"""The SQLite backend's throughput: finishes per minute of a window, one grouped read of
the retention index (queue, status, finished_at)."""

from __future__ import annotations

from shoal.backends.sqlfiles import queries
from shoal.backends.sqlite.support import Runs
from shoal.core.throughput import FinishCounts, Window, tally

_SQL = queries("shoal.backends.sqlite")


class SQLiteThroughput(Runs):
    """Mixed into :class:`~shoal.backends.sqlite.backend.SQLiteBackend`."""

    async def count_finished(self, queue: str, window: Window) -> FinishCounts:
        arguments = {"queue": queue, "start": window.start, "end": window.end}
        rows = await self._run(lambda db: db.execute(_SQL["count_finished"], arguments).fetchall())
        return tally(queue, window, [(row[0], row[1], row[2]) for row in rows])
