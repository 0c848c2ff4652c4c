"""The Redis backend's reports of its queues and workers: counts per queue (one script
each, in one round trip), the queues holding tasks, the workers registered.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from shoal.backends.redis import codec as rs
from shoal.backends.redis.keys import RedisKeys
from shoal.backends.redis.link import Script
from shoal.core.models import QueueStats, WorkerInfo


class RedisStats(RedisKeys):
    """Mixed into :class:`~shoal.backends.redis.backend.RedisBackend`."""

    _workers_keys: list[str]

    async def stats(self, queues: Sequence[str]) -> dict[str, QueueStats]:
        names = list(dict.fromkeys(queues))
        replies = await self._link.scripts(*self._per_queue("stats", names))
        return {q: rs.stats(q, reply) for q, reply in zip(names, replies, strict=True)}

    async def queues(self) -> list[str]:
        names = await self._queue_names()
        replies = await self._link.scripts(*self._per_queue("stats", names))
        return [q for q, reply in zip(names, replies, strict=True) if reply[6] > 0]

    async def workers(self) -> list[WorkerInfo]:
        [flat] = await self._link.scripts(Script("workers", self._workers_keys, ["list"]))
        found = []
        for n in range(0, len(flat), 3):
            worker_id, report, seen = rs.text(flat[n]), json.loads(flat[n + 1]), flat[n + 2]
            found.append(
                WorkerInfo(
                    id=worker_id, host=report["host"], pid=report["pid"],
                    queues=tuple(report["queues"]), concurrency=report["concurrency"],
                    in_flight=report["in_flight"], started_at=rs.at(report["started_at"]),
                    last_seen=rs.at(seen), version=report.get("version", ""),
                )
            )  # fmt: skip
        return sorted(found, key=lambda w: w.id)
