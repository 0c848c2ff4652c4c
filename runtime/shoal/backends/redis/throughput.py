"""The Redis backend's throughput: finishes per minute of a window, counted by
``lua/finish_counts.lua`` over the finish-time indexes in one round trip."""

from __future__ import annotations

from shoal.backends.redis.keys import RedisKeys
from shoal.backends.redis.link import Script
from shoal.core.throughput import MINUTE, FinishCounts, Window, tally

_US = 1_000_000


class RedisThroughput(RedisKeys):
    """Mixed into :class:`~shoal.backends.redis.backend.RedisBackend`."""

    async def count_finished(self, queue: str, window: Window) -> FinishCounts:
        args = [int(window.start * _US), window.minutes, int(MINUTE * _US)]
        [counts] = await self._link.scripts(Script("finish_counts", [self._base(queue)], args))
        minutes = window.minutes
        rows = [("done", n, int(counts[n])) for n in range(minutes)]
        rows += [("dead", n, int(counts[minutes + n])) for n in range(minutes)]
        return tally(queue, window, rows)
