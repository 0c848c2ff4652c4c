"""Contract cases for cancelling: at once for a task not started, through its worker's
heartbeat for a running one (``cancel``, ``HeartbeatReply.cancelling``, ``cancel_running``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from shoal.backends import Backend
from shoal.core.errors import LeaseLost
from shoal.core.models import Failure, HeartbeatReply, TaskStatus
from shoal.core.retention import Retention
from shoal.testing.contract import new_task, worker


async def test_cancel_of_a_running_task_is_a_request_its_heartbeat_carries(
    backend: Backend,
) -> None:
    await backend.push([new_task(key="order-7"), new_task()])
    asked, other = await backend.claim(["default"], "w1", 2, 30)
    assert await backend.cancel(asked.task.id, by="ann@laptop")
    running = await backend.get(asked.task.id)
    assert running is not None and running.status is TaskStatus.RUNNING
    assert running.cancelled_by == "ann@laptop"
    reply = await backend.heartbeat(worker(), [asked.lease, other.lease], 30)
    assert reply == HeartbeatReply(cancelling={asked.task.id: "ann@laptop"})

    await backend.cancel_running([asked.lease])
    cancelled = await backend.get(asked.task.id)
    assert cancelled is not None and cancelled.status is TaskStatus.CANCELLED
    assert cancelled.cancelled_by == "ann@laptop"
    assert cancelled.finished_at is not None and cancelled.worker_id is None
    assert (cancelled.attempts, cancelled.last_error) == (1, None)
    reply = await backend.heartbeat(worker(), [asked.lease, other.lease], 30)
    assert reply == HeartbeatReply(lost=(asked.task.id,))
    fresh = new_task(key="order-7")  # a cancelled task frees its idempotency key
    assert await backend.push([fresh]) == [fresh.id]
    stats = (await backend.stats(["default"]))["default"]
    assert (stats.running, stats.ready) == (1, 1)


async def test_cancel_running_is_fenced_by_the_lease(backend: Backend) -> None:
    await backend.push([new_task(), new_task()])
    done, kept = await backend.claim(["default"], "w1", 2, 30)
    await backend.ack([done.lease])
    with pytest.raises(LeaseLost) as caught:
        await backend.cancel_running([done.lease, kept.lease])
    assert caught.value.task_ids == (done.task.id,)
    finished = await backend.get(done.task.id)
    assert finished is not None and finished.status is TaskStatus.DONE
    cancelled = await backend.get(kept.task.id)
    assert cancelled is not None and cancelled.status is TaskStatus.CANCELLED


async def test_cancel_of_a_task_not_started_ends_it_at_once_with_who_asked(
    backend: Backend,
) -> None:
    await backend.push([queued := new_task(), later := new_task(delay=600)])
    assert await backend.cancel(queued.id, by="ops")
    assert await backend.cancel(later.id)
    first, second = await backend.get(queued.id), await backend.get(later.id)
    assert first is not None and first.status is TaskStatus.CANCELLED
    assert first.cancelled_by == "ops" and first.finished_at is not None
    assert second is not None and second.cancelled_by == "unknown"
    assert await backend.claim(["default"], "w1", 5, 30) == []


async def test_cancel_of_a_finished_task_changes_nothing(backend: Backend) -> None:
    await backend.push([new_task(), new_task()])
    done, dead = await backend.claim(["default"], "w1", 2, 30)
    await backend.ack([done.lease])
    await backend.fail([Failure(dead.lease, "boom", None)])
    for claim, status in ((done, TaskStatus.DONE), (dead, TaskStatus.DEAD)):
        assert not await backend.cancel(claim.task.id, by="ops")
        task = await backend.get(claim.task.id)
        assert task is not None and (task.status, task.cancelled_by) == (status, None)
    await backend.push([queued := new_task()])
    assert await backend.cancel(queued.id, by="first")
    assert not await backend.cancel(queued.id, by="second")
    again = await backend.get(queued.id)
    assert again is not None and again.cancelled_by == "first"


async def test_a_cancel_request_outlives_a_release_and_a_retry_forgets_it(
    backend: Backend,
) -> None:
    await backend.push([new_task()])
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    assert await backend.cancel(claim.task.id, by="ops")
    # Given back before its worker heard of it: the next claim shows the request, and that
    # worker ends the task without running it.
    await backend.release([claim.lease])
    [again] = await backend.claim(["default"], "w2", 1, 30)
    assert again.task.cancelled_by == "ops"
    await backend.cancel_running([again.lease])
    assert await backend.retry(claim.task.id)
    revived = await backend.get(claim.task.id)
    assert revived is not None and revived.status is TaskStatus.QUEUED
    assert revived.cancelled_by is None
    [third] = await backend.claim(["default"], "w3", 1, 30)
    assert third.task.cancelled_by is None
    assert (await backend.heartbeat(worker("w3"), [third.lease], 30)) == HeartbeatReply()


async def test_a_task_cancelled_while_running_goes_by_its_retention(backend: Backend) -> None:
    await backend.push([new_task()])
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    await backend.cancel(claim.task.id, by="ops")
    await backend.cancel_running([claim.lease])
    kept = {"default": Retention(done=timedelta(hours=1))}
    await backend.reap(worker_timeout=60, retention=kept)
    assert await backend.get(claim.task.id) is not None
    await backend.reap(worker_timeout=60, retention={"default": Retention(done=timedelta(0))})
    assert await backend.get(claim.task.id) is None
