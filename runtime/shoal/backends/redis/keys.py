"""The names of a Redis backend's keys, and what its mixins (admin, stats, results,
schedules) share to reach them: each queue's base name (its hash tag, so a queue lives on
one Cluster slot), the registry of queues, a script per queue."""

from __future__ import annotations

from collections.abc import Iterable

from shoal.backends.redis import codec as rs
from shoal.backends.redis.codec import Arg
from shoal.backends.redis.link import Link, Script

BATCH = 1000  # promotions per claim, expirations per reap, deletions per purge call


class RedisKeys:
    """The base of :class:`~shoal.backends.redis.backend.RedisBackend` and of its mixins."""

    prefix: str
    _link: Link
    _queues_key: str

    def _base(self, queue: str) -> str:
        """The base name of ``queue``'s keys (its hash tag)."""
        return f"{{{self.prefix}:{queue}}}"

    async def _queue_names(self) -> list[str]:
        [names], _ = await self._link.send([("SMEMBERS", self._queues_key)])
        return sorted(rs.text(name) for name in names)

    def _per_queue(self, name: str, queues: Iterable[str], *args: Arg) -> list[Script]:
        return [Script(name, [self._base(q)], args) for q in queues]
