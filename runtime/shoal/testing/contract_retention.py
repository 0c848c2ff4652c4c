"""Contract cases for retention: ``reap(retention=...)`` deletes finished tasks past their
time, bounded, and nothing else (:mod:`shoal.core.retention`).

Retentions here are zero or fractions of a second so that the cases are fast; a case that
must see time pass polls with a generous ceiling rather than asserting after a fixed sleep.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from shoal.backends import Backend
from shoal.backends.shared.retention import PRUNE_BATCH
from shoal.core.models import Failure, TaskStatus
from shoal.core.retention import Retention
from shoal.testing.contract import new_task

NOW = timedelta(0)
HOUR = timedelta(hours=1)


async def _finish(backend: Backend, queue: str) -> dict[TaskStatus, str]:
    """One task of ``queue`` in each status, finished ones included; their ids by status."""
    done, dead, retrying, running, cancelled, queued = (new_task(queue) for _ in range(6))
    await backend.push([done, dead, retrying, running])
    claims = {c.task.id: c for c in await backend.claim([queue], "w1", 4, 30)}
    await backend.ack([claims[done.id].lease])
    await backend.fail(
        [
            Failure(claims[dead.id].lease, "boom", None),
            Failure(claims[retrying.id].lease, "again", retry_at=new_task().run_at + HOUR),
        ]
    )
    await backend.push([cancelled, queued])
    assert await backend.cancel(cancelled.id)
    return {
        TaskStatus.DONE: done.id,
        TaskStatus.DEAD: dead.id,
        TaskStatus.RETRYING: retrying.id,
        TaskStatus.RUNNING: running.id,
        TaskStatus.CANCELLED: cancelled.id,
        TaskStatus.QUEUED: queued.id,
    }


async def _kept(backend: Backend, ids: dict[TaskStatus, str]) -> set[TaskStatus]:
    return {status for status, task_id in ids.items() if await backend.get(task_id) is not None}


async def test_retention_deletes_finished_tasks_past_their_time_and_nothing_else(
    backend: Backend,
) -> None:
    ids = await _finish(backend, "short")
    unfinished = {TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.RETRYING}
    await backend.reap(worker_timeout=60, retention={"short": Retention(done=NOW, dead=HOUR)})
    assert await _kept(backend, ids) == unfinished | {TaskStatus.DEAD}
    await backend.reap(worker_timeout=60, retention={"short": Retention(done=NOW, dead=NOW)})
    assert await _kept(backend, ids) == unfinished
    listed = await backend.list_tasks(queue="short")
    assert {t.status for t in listed} == unfinished
    stats = (await backend.stats(["short"]))["short"]
    assert (stats.dead, stats.running, stats.scheduled, stats.ready) == (0, 1, 1, 1)


async def test_retention_leaves_alone_queues_it_does_not_name(backend: Backend) -> None:
    ids = await _finish(backend, "other")
    await backend.reap(worker_timeout=60)
    await backend.reap(worker_timeout=60, retention={"short": Retention(done=NOW, dead=NOW)})
    assert await _kept(backend, ids) == set(ids)
    assert await backend.queues() == ["other"]


async def test_retention_none_keeps_finished_tasks_until_purged(backend: Backend) -> None:
    ids = await _finish(backend, "kept")
    await backend.reap(worker_timeout=60, retention={"kept": Retention(done=None, dead=None)})
    assert await _kept(backend, ids) == set(ids)


async def test_retention_deletes_a_task_once_its_time_has_passed_never_before(
    backend: Backend,
) -> None:
    kept_for = 0.3
    retention = {"default": Retention(done=timedelta(seconds=kept_for), dead=HOUR)}
    await backend.push([new_task()])
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    acked = time.monotonic()
    await backend.ack([claim.lease])
    deadline = acked + 30
    while await backend.get(claim.task.id) is not None:
        assert time.monotonic() < deadline, "a done task outlived its retention by 30 s"
        reaped = time.monotonic()
        await backend.reap(worker_timeout=60, retention=retention)
        await asyncio.sleep(0.05)
    # Deleted by a reap that began at least its retention after the ack had finished.
    assert reaped - acked >= kept_for - 0.05


async def test_retention_spares_a_task_retried_after_it_finished(backend: Backend) -> None:
    gone = {"default": Retention(done=NOW, dead=NOW)}
    await backend.push([new_task(max_attempts=1)])
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    await backend.fail([Failure(claim.lease, "boom", None)])
    assert await backend.retry(claim.task.id)
    await backend.reap(worker_timeout=60, retention=gone)
    queued = await backend.get(claim.task.id)
    assert queued is not None and queued.status is TaskStatus.QUEUED
    [again] = await backend.claim(["default"], "w1", 1, 30)
    await backend.reap(worker_timeout=60, retention=gone)
    assert await backend.get(claim.task.id) is not None  # running
    await backend.ack([again.lease])
    await backend.reap(worker_timeout=60, retention=gone)
    assert await backend.get(claim.task.id) is None


async def test_retention_deletes_a_task_reaped_dead(backend: Backend) -> None:
    await backend.push([new_task(max_attempts=1)])
    [claim] = await backend.claim(["default"], "w1", 1, 0.1)
    await asyncio.sleep(0.2)
    retention = {"default": Retention(done=HOUR, dead=NOW)}
    report = await backend.reap(worker_timeout=60, retention=retention)
    assert report.dead == (claim.task.id,)
    await backend.reap(worker_timeout=60, retention=retention)
    assert await backend.get(claim.task.id) is None


async def test_retention_deletes_more_than_one_batch_in_a_reap(backend: Backend) -> None:
    count = PRUNE_BATCH + 200
    await backend.push([new_task() for _ in range(count)])
    claims = await backend.claim(["default"], "w1", count, 30)
    await backend.ack([c.lease for c in claims])
    await backend.reap(worker_timeout=60, retention={"default": Retention(done=NOW)})
    assert await backend.list_tasks(queue="default", limit=10) == []
    assert await backend.queues() == []
