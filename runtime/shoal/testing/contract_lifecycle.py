"""Contract cases: opening and closing, as an app relies on them.

An app opens its backend on its first push and closes it when that push's event loop ends
(``shoal.app.opening``), the worker opens an app that its start-up already opened, and the
sync API may move an app between loops: so ``open`` on an open backend must change nothing,
and a closed backend must open again and serve, its stored tasks intact.
"""

from __future__ import annotations

from shoal.backends.base import Backend
from shoal.core.models import TaskStatus
from shoal.testing.contract import new_task


async def test_open_on_an_open_backend_changes_nothing(backend: Backend) -> None:
    [task_id] = await backend.push([new_task()])
    await backend.open()
    await backend.open()
    stored = await backend.get(task_id)
    assert stored is not None
    assert stored.status is TaskStatus.QUEUED
    assert len(await backend.push([new_task(), new_task()])) == 2


async def test_a_closed_backend_opens_again_and_serves(backend: Backend) -> None:
    [before] = await backend.push([new_task()])
    await backend.close()
    await backend.open()
    [after] = await backend.push([new_task()])
    for task_id in (before, after):
        stored = await backend.get(task_id)
        assert stored is not None
        assert stored.status is TaskStatus.QUEUED
    assert (await backend.stats(["default"]))["default"].ready == 2
