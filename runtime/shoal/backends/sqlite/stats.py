"""The SQLite backend's reports of its queues and workers: counts per queue (one read
transaction, limits included), the queues known, the workers registered.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence

from shoal.backends.sqlfiles import queries
from shoal.backends.sqlite.limits import held
from shoal.backends.sqlite.support import Runs
from shoal.core.models import QueueStats, WorkerInfo, from_epoch

_SQL = queries("shoal.backends.sqlite")


class SQLiteStats(Runs):
    """Mixed into :class:`~shoal.backends.sqlite.backend.SQLiteBackend`."""

    async def stats(self, queues: Sequence[str]) -> dict[str, QueueStats]:
        now = time.time()
        arguments = {"now": now, "queues": json.dumps(list(queues))}

        def read(db: sqlite3.Connection) -> tuple[list[sqlite3.Row], dict[str, int]]:
            db.execute("BEGIN")  # one read transaction: counts and limits of one moment
            try:
                return db.execute(_SQL["stats"], arguments).fetchall(), held(db, queues, now)
            finally:
                db.execute("COMMIT")

        rows, held_by_queue = await self._run(read)
        found = {
            row["queue"]: QueueStats(
                row["queue"],
                ready=row["ready"],
                scheduled=row["scheduled"],
                running=row["running"],
                dead=row["dead"],
                oldest_ready_age=None if row["oldest_ready"] is None else now - row["oldest_ready"],
                held_back=held_by_queue.get(row["queue"], 0),
                next_due_in=None if row["next_scheduled"] is None else row["next_scheduled"] - now,
            )
            for row in rows
        }
        return {queue: found.get(queue, QueueStats(queue)) for queue in queues}

    async def queues(self) -> list[str]:
        rows = await self._run(lambda db: db.execute(_SQL["queues"]).fetchall())
        return [row[0] for row in rows]

    async def workers(self) -> list[WorkerInfo]:
        rows = await self._run(lambda db: db.execute(_SQL["workers"]).fetchall())
        return [
            WorkerInfo(
                id=row["id"],
                host=row["host"],
                pid=row["pid"],
                queues=tuple(json.loads(row["queues"])),
                concurrency=row["concurrency"],
                in_flight=row["in_flight"],
                started_at=from_epoch(row["started_at"]),
                last_seen=from_epoch(row["last_seen"]),
                version=row["version"],
            )
            for row in rows
        ]
