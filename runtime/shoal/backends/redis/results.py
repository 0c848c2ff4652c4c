"""The Redis backend's results: how a task ended, read from its kept result or from the task
itself, and the wait for it, woken by pub/sub on the results channel.
"""

from __future__ import annotations

from shoal.backends.redis import codec as rs
from shoal.backends.redis.keys import RedisKeys
from shoal.backends.redis.listener import Listener
from shoal.backends.shared.finishes import Finishes
from shoal.backends.shared.results import outcome_of
from shoal.core.errors import TaskNotFound
from shoal.core.models import TaskResult


class RedisResults(RedisKeys):
    """Mixed into :class:`~shoal.backends.redis.backend.RedisBackend`."""

    _listener: Listener
    _finishes: Finishes

    async def result(self, task_id: str) -> TaskResult | None:
        # Ids do not name their queue: the task, then the result, in every queue, in one round
        # trip. The task first: a script stores a result as it ends the task, so whatever runs
        # between the two reads, the result read second is never older.
        names = await self._queue_names()
        rows, _ = await self._link.send(
            [("HGETALL", f"{self._base(q)}:{kind}:{task_id}") for kind in "tr" for q in names]
        )
        kept = next((row for row in rows[len(names) :] if row), None)
        if kept is not None:
            return rs.kept(task_id, kept)
        task = next((row for row in rows[: len(names)] if row), None)
        if task is None:
            raise TaskNotFound(task_id)
        return outcome_of(rs.stored(task))

    async def wait_for_result(self, task_id: str, timeout: float) -> TaskResult | None:
        """Pub/sub on the results channel, on the listener's connection (one for every
        waiter); acks and fails through this instance wake its waiters at once."""
        await self._listener.want_results()
        self._listener.start()
        return await self._finishes.wait_for_result(task_id, timeout, lambda: self.result(task_id))
