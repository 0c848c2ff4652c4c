"""Contract cases for results: values kept with an ack, failures with their traceback, expiry
apart from the task, and waits woken by the backend's own hints.

Part of :class:`shoal.testing.contract.BackendContract` (listed in ``CASE_MODULES``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from shoal.backends import Backend, open_backend
from shoal.backends.shared import finishes
from shoal.core.errors import LeaseLost, TaskNotFound
from shoal.core.ids import new_id
from shoal.core.models import Failure, KeptValue, TaskStatus, utcnow
from shoal.core.retention import Retention
from shoal.testing.contract import new_task

TRACEBACK = 'Traceback (most recent call last):\n  File "tasks.py", line 3\nValueError: bad\n'


def kept(task_id: str, value: bytes = b"42", seconds: float = 60) -> KeptValue:
    return KeptValue(task_id, value, utcnow() + timedelta(seconds=seconds))


@asynccontextmanager
async def another_process(backend: Backend, backend_url: str) -> AsyncIterator[Backend]:
    """A second instance on the same store, as another process would open it; memory:// has
    no other, so there it is the same instance."""
    if backend_url.startswith("memory:"):
        yield backend
        return
    async with open_backend(backend_url) as other:
        yield other


async def test_ack_keeps_a_result_apart_from_the_task(backend: Backend) -> None:
    [task_id] = await backend.push([new_task()])
    assert await backend.result(task_id) is None  # queued: no outcome yet
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    assert await backend.result(task_id) is None  # running
    await backend.ack([claim.lease], [kept(task_id, b'{"total": 3}')])
    result = await backend.result(task_id)
    assert result is not None
    assert (result.status, result.value, result.error) == (TaskStatus.DONE, b'{"total": 3}', None)
    assert result.expires_at is not None and result.expires_at > utcnow()
    # Results live apart from tasks: purging the task leaves the result until it expires.
    assert await backend.purge(queue="default", statuses=[TaskStatus.DONE]) == 1
    assert await backend.get(task_id) is None
    again = await backend.result(task_id)
    assert again is not None and again.value == b'{"total": 3}'


async def test_a_finished_task_without_a_kept_result_has_an_outcome(backend: Backend) -> None:
    [done, cancelled] = await backend.push([new_task(), new_task(delay=600)])
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    await backend.ack([claim.lease])
    assert await backend.cancel(cancelled)
    result = await backend.result(done)
    assert result is not None and (result.status, result.value) == (TaskStatus.DONE, None)
    outcome = await backend.result(cancelled)
    assert outcome is not None and outcome.status is TaskStatus.CANCELLED
    with pytest.raises(TaskNotFound):
        await backend.result(new_id())


async def test_a_lost_lease_keeps_no_result(backend: Backend) -> None:
    [task_id] = await backend.push([new_task()])
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    await backend.ack([claim.lease])
    with pytest.raises(LeaseLost):
        await backend.ack([claim.lease], [kept(task_id, b'"late"')])
    result = await backend.result(task_id)
    assert result is not None and result.value is None


async def test_a_failure_keeps_its_traceback_on_the_task(backend: Backend) -> None:
    [task_id] = await backend.push([new_task(max_attempts=2)])
    [first] = await backend.claim(["default"], "w1", 1, 30)
    await backend.fail([Failure(first.lease, "ValueError: bad", utcnow(), TRACEBACK)])
    retrying = await backend.get(task_id)
    assert retrying is not None and retrying.status is TaskStatus.RETRYING
    assert retrying.last_traceback == TRACEBACK
    assert await backend.result(task_id) is None  # it will run again: no outcome yet

    [second] = await backend.claim(["default"], "w1", 1, 30)
    final = TRACEBACK.replace("bad", "worse")
    keep_until = utcnow() + timedelta(seconds=60)
    await backend.fail([Failure(second.lease, "ValueError: worse", None, final, keep_until)])
    dead = await backend.get(task_id)
    assert dead is not None and (dead.status, dead.last_traceback) == (TaskStatus.DEAD, final)
    await backend.purge(queue="default", statuses=[TaskStatus.DEAD])
    result = await backend.result(task_id)  # kept apart: the purge left it
    assert result is not None
    assert (result.status, result.error, result.traceback) == (
        TaskStatus.DEAD,
        "ValueError: worse",
        final,
    )


async def test_a_dead_task_without_a_kept_failure_is_described_from_itself(
    backend: Backend,
) -> None:
    [task_id] = await backend.push([new_task(max_attempts=1)])
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    await backend.fail([Failure(claim.lease, "KeyError: 'x'", None, TRACEBACK)])
    result = await backend.result(task_id)
    assert result is not None
    assert (result.status, result.error, result.traceback) == (
        TaskStatus.DEAD,
        "KeyError: 'x'",
        TRACEBACK,
    )


async def test_an_expired_result_is_gone(backend: Backend) -> None:
    [short, long] = await backend.push([new_task(), new_task()])
    claims = await backend.claim(["default"], "w1", 2, 30)
    await backend.ack([c.lease for c in claims], [kept(short, seconds=0.3), kept(long)])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (result := await backend.result(short)) is not None and result.value is not None:
        assert loop.time() < deadline, "the result outlived its expiry by 10 s"
        await asyncio.sleep(0.05)
    assert result is not None and result.status is TaskStatus.DONE  # from the task itself
    # The backend removes it (a key's time to live; SQL: in the reap that workers run), so
    # once the task is purged too nothing is left of it; the unexpired one stays.
    await backend.reap(worker_timeout=60)
    await backend.purge(queue="default", statuses=[TaskStatus.DONE])
    with pytest.raises(TaskNotFound):
        await backend.result(short)
    still = await backend.result(long)
    assert still is not None and still.value == b"42"


async def test_retry_forgets_a_kept_failure(backend: Backend) -> None:
    [task_id] = await backend.push([new_task(max_attempts=1)])
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    keep_until = utcnow() + timedelta(seconds=60)
    await backend.fail([Failure(claim.lease, "ValueError: bad", None, TRACEBACK, keep_until)])
    assert await backend.retry(task_id)
    assert await backend.result(task_id) is None  # queued again: the old failure is not it


async def test_a_wait_is_woken_by_the_backend_not_by_polling(
    backend: Backend, backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the fallback poll pushed beyond the test, only the backend's hints (an ack, a
    dead failure, a cancel through another instance) can end these waits."""
    monkeypatch.setattr(finishes, "POLL_INTERVAL", 300.0)
    loop = asyncio.get_running_loop()
    ids = await backend.push([new_task(max_attempts=1), new_task(max_attempts=1), new_task()])
    [acked, failed, cancelled] = ids
    waits = [asyncio.create_task(backend.wait_for_result(i, 60)) for i in ids]
    await asyncio.sleep(0.2)  # the waits have looked, found nothing, and wait
    assert not any(w.done() for w in waits)
    started = loop.time()
    async with another_process(backend, backend_url) as worker:
        claims = {c.task.id: c for c in await worker.claim(["default"], "w2", 2, 30)}
        await worker.ack([claims[acked].lease], [kept(acked)])
        await worker.fail([Failure(claims[failed].lease, "ValueError: bad", None, TRACEBACK)])
        assert await worker.cancel(cancelled)
        results = await asyncio.wait_for(asyncio.gather(*waits), 30)
    assert loop.time() - started < 20, "woken by a poll, not by the backend"
    assert [r.status if r else None for r in results] == [
        TaskStatus.DONE,
        TaskStatus.DEAD,
        TaskStatus.CANCELLED,
    ]
    assert results[0] is not None and results[0].value == b"42"


async def test_a_wait_ends_after_its_timeout_and_on_an_unknown_task(backend: Backend) -> None:
    [task_id] = await backend.push([new_task()])
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await backend.wait_for_result(task_id, 0.2) is None
    assert loop.time() - started >= 0.19
    with pytest.raises(TaskNotFound):
        await backend.wait_for_result(new_id(), 5)


async def test_a_thousand_waiters_all_hear_their_task(backend: Backend) -> None:
    tasks = [new_task() for _ in range(1000)]
    await backend.push(tasks)
    waits = [asyncio.create_task(backend.wait_for_result(t.id, 120)) for t in tasks]
    await asyncio.sleep(0.1)
    claims = await backend.claim(["default"], "w1", 1000, 60)
    await backend.ack([c.lease for c in claims], [kept(c.task.id) for c in claims])
    results = await asyncio.wait_for(asyncio.gather(*waits), 120)
    assert len(claims) == 1000
    assert all(r is not None and r.value == b"42" for r in results)


async def test_a_task_the_reaper_kills_ends_its_wait(
    backend: Backend, backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker died holding the task's last attempt: the reap that ends it dead is a hint
    too, so the wait ends with the reaper's words, not at a poll."""
    monkeypatch.setattr(finishes, "POLL_INTERVAL", 300.0)
    [task_id] = await backend.push([new_task(max_attempts=1)])
    wait = asyncio.create_task(backend.wait_for_result(task_id, 60))
    async with another_process(backend, backend_url) as worker:
        await worker.claim(["default"], "w2", 1, 0.05)  # and then the worker dies
        await asyncio.sleep(0.2)
        report = await worker.reap(worker_timeout=60)
        assert report.dead == (task_id,)
        result = await asyncio.wait_for(wait, 30)
    assert result is not None and result.status is TaskStatus.DEAD
    assert result.error is not None and "lease expired" in result.error


async def test_a_task_cancelled_while_it_runs_ends_its_wait(
    backend: Backend, backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel of a running task is only a request; the attempt that stops on it ends the
    task (``cancel_running``), and that wakes its waiters as a cancel before it ran does,
    with who asked."""
    monkeypatch.setattr(finishes, "POLL_INTERVAL", 300.0)
    [running, queued] = await backend.push([new_task(), new_task(delay=600)])
    waits = [asyncio.create_task(backend.wait_for_result(i, 60)) for i in (running, queued)]
    async with another_process(backend, backend_url) as worker:
        [claim] = await worker.claim(["default"], "w2", 1, 30)
        assert await worker.cancel(running, by="ops@host")
        await asyncio.sleep(0.2)
        assert not waits[0].done()  # still running: the request alone ends nothing
        await worker.cancel_running([claim.lease])
        assert await worker.cancel(queued, by="cron")
        results = await asyncio.wait_for(asyncio.gather(*waits), 30)
    assert [(r.status, r.cancelled_by) if r else None for r in results] == [
        (TaskStatus.CANCELLED, "ops@host"),
        (TaskStatus.CANCELLED, "cron"),
    ]


async def test_bulk_retry_forgets_kept_results_and_who_cancelled(backend: Backend) -> None:
    [failed, cancelled] = await backend.push([new_task(max_attempts=1), new_task(delay=600)])
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    keep_until = utcnow() + timedelta(seconds=60)
    await backend.fail([Failure(claim.lease, "ValueError: bad", None, TRACEBACK, keep_until)])
    assert await backend.cancel(cancelled, by="ops")
    assert await backend.retry_many([failed, cancelled]) == 2
    for task_id in (failed, cancelled):
        assert await backend.result(task_id) is None  # queued again: nothing kept is it
        task = await backend.get(task_id)
        assert task is not None and task.cancelled_by is None


async def test_purges_and_retention_leave_kept_results_alone(backend: Backend) -> None:
    """Results expire on their own: deleting finished tasks, by id, by status or by the
    retention of a reap, keeps their results until then."""
    ids = await backend.push([new_task(queue) for queue in ("by-id", "by-status", "retained")])
    claims = await backend.claim(["by-id", "by-status", "retained"], "w1", 3, 30)
    await backend.ack([c.lease for c in claims], [kept(i) for i in ids])
    assert await backend.purge_tasks(ids[:1]) == 1
    assert await backend.purge(queue="by-status", statuses=[TaskStatus.DONE]) == 1
    await asyncio.sleep(0.01)
    await backend.reap(worker_timeout=60, retention={"retained": Retention(done=timedelta(0))})
    for task_id in ids:
        assert await backend.get(task_id) is None
        result = await backend.result(task_id)
        assert result is not None and result.value == b"42"
