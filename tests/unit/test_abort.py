"""Cancelling running tasks with a worker on memory://: an async handler is cancelled, a
plain function sees the flag on its Context, and either ends cancelled with who asked; an
event and a metric say so; a handler that finishes anyway is done."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

import pytest
from prometheus_client import REGISTRY

from shoal import App, Context, Event, Worker, WorkerSettings
from shoal.core.models import Task, TaskStatus


@pytest.fixture
async def app() -> AsyncIterator[App]:
    app = App("memory://")
    await app.open()
    yield app
    await app.close()


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def status_of(app: App, task_id: str) -> Task:
    task = await app.backend.get(task_id)
    assert task is not None
    return task


async def run_until_cancelled(app: App, task_id: str, started: asyncio.Event) -> Task:
    """Run a worker (heartbeats every 0.1 s), cancel the task once it runs, and return it
    once it has finished."""
    worker = Worker(app, WorkerSettings(lease_seconds=0.6, poll_interval=0.05))
    run = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(10):
            await started.wait()
        assert await app.backend.cancel(task_id, by="ann@laptop")
        async with asyncio.timeout(10):
            while (task := await status_of(app, task_id)).status is TaskStatus.RUNNING:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        worker.stop("test over")
        await run
    return task


def cancelled_count(queue: str, name: str) -> float:
    labels = {"queue": queue, "task": name}
    return REGISTRY.get_sample_value("shoal_tasks_cancelled_total", labels) or 0.0


async def test_an_async_handler_is_cancelled_and_the_task_ends_cancelled(app: App) -> None:
    started, events = asyncio.Event(), []

    @app.task(queue="abort-async")
    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    @app.on("task_cancelled")
    def seen(event: Event) -> None:
        events.append(event)

    before = cancelled_count("abort-async", forever.name)
    task = await run_until_cancelled(app, (await forever.push()).id, started)
    assert (task.status, task.cancelled_by, task.last_error) == (
        TaskStatus.CANCELLED,
        "ann@laptop",
        None,
    )
    await until(lambda: events)
    assert events[0].task is not None and events[0].task.cancelled_by == "ann@laptop"
    assert cancelled_count("abort-async", forever.name) == before + 1


async def test_a_plain_function_sees_the_flag_and_raises(app: App) -> None:
    started, saw = asyncio.Event(), threading.Event()
    loop = asyncio.get_running_loop()

    @app.task(queue="abort-plain")
    def patient(context: Context) -> None:
        loop.call_soon_threadsafe(started.set)
        while not context.cancel_requested:
            threading.Event().wait(0.01)
        saw.set()
        context.raise_if_cancelled()

    task = await run_until_cancelled(app, (await patient.push()).id, started)
    assert saw.is_set()
    assert (task.status, task.cancelled_by) == (TaskStatus.CANCELLED, "ann@laptop")


async def test_a_plain_function_that_finishes_anyway_is_done(app: App) -> None:
    started = asyncio.Event()
    loop = asyncio.get_running_loop()

    @app.task(queue="abort-done")
    def stubborn(context: Context) -> None:
        loop.call_soon_threadsafe(started.set)
        while not context.cancel_requested:
            threading.Event().wait(0.01)

    task = await run_until_cancelled(app, (await stubborn.push()).id, started)
    assert (task.status, task.cancelled_by) == (TaskStatus.DONE, "ann@laptop")


async def test_a_task_claimed_with_a_cancel_requested_ends_without_running(app: App) -> None:
    ran = []

    @app.task(queue="abort-claimed")
    def never() -> None:
        ran.append(1)

    task_id = (await never.push()).id
    [claim] = await app.backend.claim(["abort-claimed"], "gone", 1, 30)
    assert await app.backend.cancel(task_id, by="ops")
    await app.backend.release([claim.lease])  # its worker stopped before it heard
    worker = Worker(app, WorkerSettings(poll_interval=0.05))
    run = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(10):
            while (await status_of(app, task_id)).status is not TaskStatus.CANCELLED:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        worker.stop("test over")
        await run
    assert ran == []
