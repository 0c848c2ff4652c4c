"""The Redis backend's admin primitives: reading, listing, retrying, cancelling and purging
tasks, each change one script per queue (what the board and the CLI call). Ids do not name
their queue, so a task is first found in every queue, in one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from shoal.backends.base import PURGEABLE, UNKNOWN_ASKER
from shoal.backends.redis import codec as rs
from shoal.backends.redis.codec import Arg
from shoal.backends.redis.keys import BATCH, RedisKeys
from shoal.backends.redis.link import Script
from shoal.backends.shared.finishes import Finishes
from shoal.backends.shared.listing import TaskQuery
from shoal.backends.shared.wakeups import Wakeups
from shoal.core.errors import TaskNotFound
from shoal.core.models import Task, TaskStatus

_LIST_BUDGET = 8192  # ids a listing examines per queue and round trip at most (list.lua)


class RedisAdmin(RedisKeys):
    """Mixed into :class:`~shoal.backends.redis.backend.RedisBackend`."""

    _channel: str
    _results_channel: str
    _wakeups: Wakeups
    _finishes: Finishes

    async def _find(self, task_id: str) -> tuple[str, dict[bytes, bytes]] | None:
        # Ids do not name their queue: look in every queue, in one round trip.
        names = await self._queue_names()
        rows, _ = await self._link.send(
            [("HGETALL", f"{self._base(q)}:t:{task_id}") for q in names]
        )
        return next(((q, row) for q, row in zip(names, rows, strict=True) if row), None)

    async def get(self, task_id: str) -> Task | None:
        found = await self._find(task_id)
        return None if found is None else rs.stored(found[1])

    async def list_page(self, query: TaskQuery) -> list[Task]:
        """Each queue's status indexes walked together, newest first, by list.lua; a walk
        that a rare task name makes long goes on in further round trips, each holding the
        server for at most ``_LIST_BUDGET`` ids per queue; then read.lua reads the page."""
        names = [query.queue] if query.queue is not None else await self._queue_names()
        wanted = [s.value for s in (query.statuses or tuple(TaskStatus))]
        chosen: list[tuple[str, str]] = []  # (id, queue), newest first
        above, budget = query.above, 256
        while names and len(chosen) < query.limit:
            # Every queue walks the same budget, and the page is exact only down to the walk
            # that went least deep: a small budget that doubles each round keeps a rare name
            # from making every queue find a whole page of its own.
            budget = min(budget, _LIST_BUDGET)
            need = query.limit - len(chosen)
            args: list[Arg] = [need, above or "", query.lowest or "", query.name or "", budget]
            replies = await self._link.scripts(*self._per_queue("list", names, *args, *wanted))
            floors = [rs.text(reply[0]) for reply in replies if reply[0]]
            floor = max(floors, default=None)  # exact at and above the highest floor
            found = [
                (rs.text(task_id), q)
                for q, reply in zip(names, replies, strict=True)
                for task_id in reply[1:]
            ]
            exact = sorted((f for f in found if floor is None or f[0] >= floor), reverse=True)
            chosen += exact[:need]
            if floor is None:
                break
            above, budget = floor, budget * 2
        # The page's tasks only, read from the queues that hold them: one more round trip.
        by_queue: dict[str, list[Arg]] = {}
        for task_id, q in chosen:
            by_queue.setdefault(q, []).append(task_id)
        reads = [Script("read", [self._base(q)], ids) for q, ids in by_queue.items()]
        replies = await self._link.scripts(*reads) if reads else []
        tasks = [task for reply in replies for task, _ in rs.exported(reply)]
        return sorted(tasks, key=lambda t: t.id, reverse=True)

    async def _admin(self, name: str, task_id: str, *args: Arg) -> tuple[bool, str]:
        found = await self._find(task_id)
        if found is None:
            raise TaskNotFound(task_id)
        queue = found[0]
        [done] = await self._link.scripts(Script(name, [self._base(queue)], [task_id, *args]))
        if done < 0:  # purged between the two round trips
            raise TaskNotFound(task_id)
        return bool(done), queue

    async def retry(self, task_id: str, *, run_at: datetime | None = None) -> bool:
        found = await self._find(task_id)
        if found is None:
            raise TaskNotFound(task_id)
        [reply] = await self._retry([found[0]], [task_id], run_at)
        if reply < 0:  # purged between the two round trips
            raise TaskNotFound(task_id)
        return reply == 1

    async def retry_many(self, task_ids: Sequence[str]) -> int:
        # Ids do not name their queue: every queue's script queues those it holds.
        ids = list(dict.fromkeys(task_ids))
        return 0 if not ids else (await self._retry(await self._queue_names(), ids)).count(1)

    async def _retry(
        self, names: Sequence[str], ids: Sequence[str], run_at: datetime | None = None
    ) -> list[int]:
        """retry.lua over ``ids`` in each queue of ``names``: per id, 1 queued, 0 in another
        state, -1 in none of them."""
        when = "" if run_at is None else rs.micros(run_at)
        scripts = [Script("retry", [self._base(q)], [when, self._channel, q, *ids]) for q in names]
        replies = await self._link.scripts(*scripts)
        queued_in = [q for q, reply in zip(names, replies, strict=True) if 1 in reply]
        if queued_in:
            self._wakeups.work(queued_in)
        return [max(codes) for codes in zip(*replies, strict=True)] if replies else [-1] * len(ids)

    async def cancel(self, task_id: str, *, by: str = UNKNOWN_ASKER) -> bool:
        cancelled = (await self._admin("cancel", task_id, by, self._results_channel))[0]
        if cancelled:  # a running task is only marked: the hint just makes waiters look
            self._finishes.finished([task_id])
        return cancelled

    async def purge(self, *, queue: str | None, statuses: Sequence[TaskStatus]) -> int:
        doomed = [s.value for s in statuses if s in PURGEABLE]
        if not doomed:
            return 0
        names = [queue] if queue is not None else await self._queue_names()
        total = 0
        while names:  # a pass deletes at most BATCH per queue; a short pass ends a queue
            replies = await self._link.scripts(*self._per_queue("purge", names, BATCH, *doomed))
            total += sum(replies)
            names = [q for q, deleted in zip(names, replies, strict=True) if deleted >= BATCH]
        return total

    async def purge_tasks(self, task_ids: Sequence[str]) -> int:
        # Ids do not name their queue: every queue's script deletes those it holds.
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return 0
        return sum(
            await self._link.scripts(*self._per_queue("purge_ids", await self._queue_names(), *ids))
        )
