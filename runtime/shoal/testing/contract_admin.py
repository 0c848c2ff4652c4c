"""Contract cases of the admin primitives: list, retry, cancel and purge one task, and the
listing's keyset pages (newest first, below a cursor) and filters (status, task name,
creation time).

Part of :class:`shoal.testing.contract.BackendContract` (listed in ``CASE_MODULES``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from shoal.backends import Backend
from shoal.core.errors import TaskNotFound
from shoal.core.ids import new_id
from shoal.core.models import Failure, TaskStatus, utcnow
from shoal.testing.contract import new_task


async def test_admin_list_retry_cancel_purge(backend: Backend) -> None:
    await backend.push([new_task(), new_task(), new_task(delay=600)])
    running, finished = await backend.claim(["default"], "w1", 2, 30)
    delayed = next(t for t in await backend.list_tasks(queue="default") if t.status == "queued")
    await backend.fail([Failure(running.lease, "bad input", None)])
    await backend.ack([finished.lease])

    listed = await backend.list_tasks(queue="default", statuses=[TaskStatus.DEAD])
    assert [t.id for t in listed] == [running.task.id]
    assert len(await backend.list_tasks(limit=2)) == 2

    assert await backend.retry(running.task.id)
    revived = await backend.get(running.task.id)
    assert revived is not None and revived.status is TaskStatus.QUEUED
    assert revived.attempts == 0
    assert not await backend.retry(finished.task.id)

    assert await backend.cancel(delayed.id)
    cancelled = await backend.get(delayed.id)
    assert cancelled is not None and cancelled.status is TaskStatus.CANCELLED
    assert not await backend.cancel(finished.task.id)  # finished: nothing to cancel

    assert await backend.purge(queue="default", statuses=[TaskStatus.DONE]) == 1
    assert await backend.get(finished.task.id) is None
    assert await backend.purge(queue=None, statuses=[TaskStatus.CANCELLED]) == 1
    with pytest.raises(TaskNotFound):
        await backend.retry(new_id())
    with pytest.raises(TaskNotFound):
        await backend.cancel(new_id())


async def test_listing_pages_newest_first_below_a_cursor(backend: Backend) -> None:
    tasks = [new_task("a" if n % 2 else "b") for n in range(7)]
    await backend.push(tasks)
    newest_first = [t.id for t in reversed(tasks)]
    pages, cursor = [], None
    while True:
        page = await backend.list_tasks(before=cursor, limit=3)
        if not page:
            break
        pages.append([t.id for t in page])
        cursor = page[-1].id
    assert pages == [newest_first[:3], newest_first[3:6], newest_first[6:]]
    assert [t.id for t in await backend.list_tasks(before=newest_first[2], limit=2)] == (
        newest_first[3:5]
    )
    in_a = [t.id for t in reversed(tasks) if t.queue == "a"]
    first = await backend.list_tasks(queue="a", limit=2)
    rest = await backend.list_tasks(queue="a", before=first[-1].id)
    assert [t.id for t in first + rest] == in_a
    assert await backend.list_tasks(limit=0) == []


async def test_listing_filters_by_status_name_and_creation_time(backend: Backend) -> None:
    early = [dataclasses.replace(new_task(), name=n) for n in ("mail.send", "pdf.render")]
    await backend.push(early)
    await asyncio.sleep(0.05)
    middle = utcnow()
    await asyncio.sleep(0.05)
    late = [dataclasses.replace(new_task(q), name="mail.send") for q in ("default", "other")]
    await backend.push(late)
    [claim] = await backend.claim(["default"], "w1", 1, 30)  # the oldest: early[0]
    await backend.fail([Failure(claim.lease, "bounced", None)])

    def ids(tasks: list[Any]) -> list[str]:
        return [t.id for t in tasks]

    assert ids(await backend.list_tasks(name="mail.send")) == [late[1].id, late[0].id, early[0].id]
    assert ids(await backend.list_tasks(name="mail.send", statuses=[TaskStatus.DEAD])) == [
        early[0].id
    ]
    assert ids(await backend.list_tasks(name="mail.send", queue="other")) == [late[1].id]
    assert ids(await backend.list_tasks(since=middle)) == [late[1].id, late[0].id]
    assert ids(await backend.list_tasks(until=middle)) == [early[1].id, early[0].id]
    assert ids(
        await backend.list_tasks(
            until=middle, statuses=[TaskStatus.QUEUED, TaskStatus.DEAD], name="pdf.render"
        )
    ) == [early[1].id]
    assert ids(await backend.list_tasks(since=middle, queue="default", before=late[1].id)) == [
        late[0].id
    ]
    assert await backend.list_tasks(name="nothing.named.so") == []
