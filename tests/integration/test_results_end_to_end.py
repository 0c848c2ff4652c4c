"""Results through the app and a real worker on every built-in backend: a typed value back
from ``result()``, a failure raised with its remote traceback (even one whose message holds
what PostgreSQL cannot store), and a result gone once it expires.

Matrix: the ``backend_url`` fixture (``tests/integration/conftest.py``): memory, SQLite,
PostgreSQL, Redis.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from shoal import App, RetryPolicy, TaskFailed
from shoal.core.errors import ResultUnavailable
from shoal.core.models import TaskStatus
from shoal.testing import drain


@dataclasses.dataclass
class Receipt:
    invoice: int
    cents: list[int]


@pytest.fixture
async def app(backend_url: str) -> AsyncIterator[App]:
    app = App(backend_url, keep_result=60)
    async with app:
        await app.backend.setup()
        yield app


async def test_a_typed_value_comes_back(app: App) -> None:
    @app.task
    async def bill(invoice: int) -> Receipt:
        return Receipt(invoice, [100, 250])

    handle = await bill.push(7)
    waiting = asyncio.create_task(handle.result(timeout=60))
    await drain(app)
    assert await asyncio.wait_for(waiting, 30) == Receipt(7, [100, 250])
    assert await handle.status() is TaskStatus.DONE


async def test_a_failure_comes_back_with_its_traceback(app: App) -> None:
    @app.task(retry=RetryPolicy(max_attempts=1))
    def refuse() -> int:
        raise PermissionError("refused: nul \x00 and \udc80")  # no backend stores these as is

    handle = await refuse.push()
    await drain(app)
    with pytest.raises(TaskFailed) as caught:
        await handle.result(timeout=30)
    assert caught.value.error_type == "PermissionError"
    assert caught.value.error_message == "refused: nul \\x00 and \\udc80"
    assert caught.value.traceback is not None and "in refuse" in caught.value.traceback
    task = await app.backend.get(handle.id)
    assert task is not None and task.last_traceback == caught.value.traceback


async def test_an_expired_result_is_gone(backend_url: str) -> None:
    app = App(backend_url, keep_result=0.5)

    @app.task
    async def brief() -> str:
        return "soon gone"

    async with app:
        await app.backend.setup()
        handle = await brief.push()
        await drain(app)
        assert await handle.result(timeout=30) == "soon gone"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while True:
            try:
                await handle.result(timeout=0)
            except ResultUnavailable:
                break
            assert loop.time() < deadline, "the result outlived its keep_result by 15 s"
            await asyncio.sleep(0.1)
