"""The throughput part of the backend contract: finishes per minute over the last hour,
per queue (the board's charts). :class:`~shoal.backends.base.Backend` inherits it.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence

from shoal.core.throughput import FinishCounts, Window


class ThroughputPrimitives(abc.ABC):
    """The throughput primitives of :class:`~shoal.backends.base.Backend`."""

    async def finish_counts(
        self, queues: Sequence[str], *, now: float | None = None
    ) -> dict[str, FinishCounts]:
        """Tasks finished done and dead in each minute of the hour ending at ``now`` (epoch
        seconds; the backend's clock when None), per queue asked for."""
        window = Window.ending(time.time() if now is None else now)
        return {q: await self.count_finished(q, window) for q in dict.fromkeys(queues)}

    @abc.abstractmethod
    async def count_finished(self, queue: str, window: Window) -> FinishCounts:
        """``queue``'s done and dead tasks per bucket of ``window`` by when they finished
        (:func:`shoal.core.throughput.tally` builds the answer); read from a finish-time
        index, so the cost follows the finishes of the hour, not the tasks kept."""
