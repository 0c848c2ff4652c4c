"""The PostgreSQL backend's reports of its queues and workers: counts per queue in one
statement (the held-back figure included), the queues known, the workers registered.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from shoal.backends.postgres.connect import Connections
from shoal.backends.postgres.limits import held
from shoal.core.models import QueueStats, WorkerInfo


class PostgresStats(abc.ABC):
    """Mixed into :class:`~shoal.backends.postgres.backend.PostgresBackend`."""

    _db: Connections
    _sql: dict[str, str]

    async def stats(self, queues: Sequence[str]) -> dict[str, QueueStats]:
        names = list(dict.fromkeys(queues))
        if not names:
            return {}
        async with self._db.acquire("stats") as conn:
            rows = await conn.fetch(self._sql["stats"], names)
        # The statement's columns are QueueStats' fields, in one row per queue asked for, and
        # what the held-back figure is computed from.
        found = {}
        for row in rows:
            fields = dict(row)
            limited, clock = fields.pop("limited"), fields.pop("clock")
            found[row["queue"]] = QueueStats(**fields, held_back=held(row["queue"], limited, clock))
        return found

    async def queues(self) -> list[str]:
        async with self._db.acquire("listing queues") as conn:
            return [row["queue"] for row in await conn.fetch(self._sql["queues"])]

    async def workers(self) -> list[WorkerInfo]:
        async with self._db.acquire("listing workers") as conn:
            rows = await conn.fetch(self._sql["workers"])
        return [WorkerInfo(**{**dict(row), "queues": tuple(row["queues"])}) for row in rows]
