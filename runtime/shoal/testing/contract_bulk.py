"""Contract cases of the repair tools: ``retry_many`` and ``purge_tasks`` over a page of ids.

``shoal jobs retry --status dead`` and ``shoal jobs purge`` select ids with ``list_tasks``
and hand them to these primitives a page at a time; a task that left its state since it
was selected, or that no longer exists, must be skipped, never changed or counted. And
``shoal workers`` shows the version each worker reports with its heartbeats.
"""

from __future__ import annotations

from shoal.backends import Backend
from shoal.core.models import Failure, TaskStatus, WorkerInfo
from shoal.testing.contract import new_task


async def _dead(backend: Backend, count: int, queue: str = "default") -> list[str]:
    """``count`` dead tasks on ``queue``, by a claim and a final failure each."""
    ids = await backend.push([new_task(queue, max_attempts=1) for _ in range(count)])
    claims = await backend.claim([queue], "w1", count, 30)
    await backend.fail([Failure(c.lease, "boom", None) for c in claims])
    return ids


async def test_retry_many_queues_dead_tasks_again_and_skips_the_rest(backend: Backend) -> None:
    dead = await _dead(backend, 3)
    [queued] = await backend.push([new_task()])
    purged = (await _dead(backend, 1, "gone"))[0]
    await backend.purge_tasks([purged])
    assert await backend.retry_many([*dead, queued, purged]) == 3
    for task_id in dead:
        task = await backend.get(task_id)
        assert task is not None
        assert (task.status, task.attempts) == (TaskStatus.QUEUED, 0)
    claimed = await backend.claim(["default"], "w2", 10, 30)
    assert {c.task.id for c in claimed} == {*dead, queued}
    assert await backend.retry_many([]) == 0


async def test_purge_tasks_deletes_finished_tasks_only(backend: Backend) -> None:
    dead = await _dead(backend, 2, "a")
    done_id, running_id, queued_id = await backend.push([new_task("b") for _ in range(3)])
    claims = {c.task.id: c for c in await backend.claim(["b"], "w1", 2, 30)}
    await backend.ack([claims[done_id].lease])
    assert running_id in claims
    cancelled = (await backend.push([new_task("b")]))[0]
    assert await backend.cancel(cancelled)
    asked = [*dead, done_id, running_id, queued_id, cancelled, "no-such-task"]
    assert await backend.purge_tasks(asked) == 4
    for task_id in (*dead, done_id, cancelled):
        assert await backend.get(task_id) is None
    for task_id, status in ((running_id, TaskStatus.RUNNING), (queued_id, TaskStatus.QUEUED)):
        task = await backend.get(task_id)
        assert task is not None and task.status is status
    assert await backend.purge_tasks(asked) == 0
    assert await backend.purge_tasks([]) == 0


async def test_a_worker_reports_its_version(backend: Backend) -> None:
    info = WorkerInfo(
        id="w1", host="test-host", pid=1, queues=("default",), concurrency=4, version="1.2.3"
    )
    await backend.heartbeat(info, [], 30)
    [registered] = await backend.workers()
    assert registered.version == "1.2.3"


async def test_retry_many_with_idempotency_keys_never_raises_and_counts_true(
    backend: Backend,
) -> None:
    """Reviving tasks whose key a newer task took: a one-by-one retry may refuse (SQL stores
    keep one unfinished holder per key), a page never fails for it; what it counts is what
    it queued."""
    [first] = await backend.push([new_task(key="k", max_attempts=1)])
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    await backend.fail([Failure(claim.lease, "boom", None)])
    [second] = await backend.push([new_task(key="k", max_attempts=1)])  # the key was free
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    await backend.fail([Failure(claim.lease, "boom", None)])
    [holder] = await backend.push([new_task(key="k")])
    [other] = await backend.push([new_task("other", key="k", max_attempts=1)])
    [claim] = await backend.claim(["other"], "w1", 1, 30)
    await backend.fail([Failure(claim.lease, "boom", None)])  # keys are per queue: free
    queued = await backend.retry_many([first, second, other])
    statuses = [getattr(await backend.get(i), "status", None) for i in (first, second, other)]
    assert queued == statuses.count(TaskStatus.QUEUED)
    assert statuses[2] is TaskStatus.QUEUED
    holder_task = await backend.get(holder)
    assert holder_task is not None and holder_task.status is TaskStatus.QUEUED
