"""Contract cases of the throughput primitive: done and dead tasks per minute of the last
hour, per queue, by when they finished (what the board's charts draw).

Part of :class:`shoal.testing.contract.BackendContract` (listed in ``CASE_MODULES``).
"""

from __future__ import annotations

import time

from shoal.backends import Backend
from shoal.core.models import Failure, TaskStatus
from shoal.core.throughput import WINDOW_MINUTES, Window
from shoal.testing.contract import new_task


async def test_finish_counts_per_minute_and_queue(backend: Backend) -> None:
    await backend.push([new_task(), new_task(), new_task(), new_task(), new_task("other")])
    claims = await backend.claim(["default"], "w1", 4, 30)
    await backend.ack([claims[0].lease, claims[1].lease])
    await backend.fail([Failure(claims[2].lease, "fatal", None)])
    assert await backend.cancel(claims[3].task.id)  # marked while running: not finished yet
    [other] = await backend.claim(["other"], "w1", 1, 30)
    await backend.fail([Failure(other.lease, "fatal", None)])
    now = time.time()

    counts = await backend.finish_counts(["default", "other", "empty", "default"], now=now)
    assert list(counts) == ["default", "other", "empty"]
    window = Window.ending(now)
    expected = {q: {s: [0] * WINDOW_MINUTES for s in ("done", "dead")} for q in counts}
    for claim in [*claims[:3], other]:
        task = await backend.get(claim.task.id)
        assert task is not None and task.finished_at is not None
        bucket = window.index(task.finished_at.timestamp())
        assert bucket is not None
        expected[task.queue][task.status.value][bucket] += 1
    for queue, found in counts.items():
        assert found.queue == queue
        assert found.start.timestamp() == window.start
        assert (list(found.done), list(found.dead)) == (
            expected[queue]["done"],
            expected[queue]["dead"],
        )
    assert sum(counts["default"].done) == 2 and sum(counts["default"].dead) == 1
    assert sum(counts["other"].dead) == 1 and sum(counts["empty"].done) == 0

    # An hour on, those finishes have left the window; a retried task's finish is forgotten.
    later = await backend.finish_counts(["default"], now=now + 2 * 3600)
    assert sum(later["default"].done) == sum(later["default"].dead) == 0
    assert await backend.retry(claims[2].task.id)
    again = await backend.finish_counts(["default"], now=now)
    assert sum(again["default"].dead) == 0 and sum(again["default"].done) == 2
    assert (await backend.get(claims[2].task.id)).status is TaskStatus.QUEUED  # type: ignore[union-attr]
