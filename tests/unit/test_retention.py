"""Retention: the pure rules, and a worker on memory:// deleting finished tasks by its app's
rules (app default, per queue, the backend's default)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from shoal import App, PermanentFailure, Retention, Worker, WorkerSettings
from shoal.core.models import TaskStatus
from shoal.core.retention import Expiry, expiries

NOW = timedelta(0)


def test_done_and_cancelled_share_a_time_and_dead_tasks_have_their_own() -> None:
    retention = Retention()
    assert retention.kept_for(TaskStatus.DONE) == timedelta(days=7)
    assert retention.kept_for(TaskStatus.CANCELLED) == timedelta(days=7)
    assert retention.kept_for(TaskStatus.DEAD) == timedelta(days=30)
    with pytest.raises(ValueError, match="never deleted"):
        retention.kept_for(TaskStatus.RUNNING)


def test_a_negative_time_is_refused() -> None:
    with pytest.raises(ValueError, match=r"Retention\.dead must not be negative"):
        Retention(dead=timedelta(seconds=-1))


def test_expiries_name_every_finished_status_not_kept_forever() -> None:
    rules = {"b": Retention(done=None, dead=NOW), "a": Retention(done=timedelta(seconds=2))}
    assert list(expiries(rules)) == [
        Expiry("a", TaskStatus.DONE, 2.0),
        Expiry("a", TaskStatus.CANCELLED, 2.0),
        Expiry("a", TaskStatus.DEAD, 30 * 86400.0),
        Expiry("b", TaskStatus.DEAD, 0.0),
    ]


@pytest.fixture
async def app() -> AsyncIterator[App]:
    app = App("memory://", retention=Retention(done=NOW, dead=None))
    await app.open()
    yield app
    await app.close()


async def test_a_worker_deletes_finished_tasks_by_its_apps_rules(app: App) -> None:
    @app.task(queue="fleeting")
    def fleeting() -> None:
        pass

    @app.task(queue="kept")
    def kept() -> None:
        pass

    @app.task(queue="doomed")
    def doomed() -> None:
        raise PermanentFailure("no")

    app.queue_options("kept", retention=Retention(done=None))
    assert app.retention_for("kept") == Retention(done=None)
    assert app.retention_for("fleeting") == app.retention
    ids = {"fleeting": (await fleeting.push()).id, "kept": (await kept.push()).id}
    ids["doomed"] = (await doomed.push()).id
    settings = WorkerSettings(poll_interval=0.05, reap_interval=0.05)
    worker = Worker(app, settings)
    run = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(10):
            while await app.backend.get(ids["fleeting"]) is not None:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        worker.stop("test over")
        await run
    kept_task, dead_task = await app.backend.get(ids["kept"]), await app.backend.get(ids["doomed"])
    assert kept_task is not None and kept_task.status is TaskStatus.DONE
    assert dead_task is not None and dead_task.status is TaskStatus.DEAD  # dead=None: kept


async def test_without_a_declared_retention_the_backends_default_applies() -> None:
    app = App("memory://")
    assert app.retention_for("any") is None
    assert app.backend.default_retention == Retention()
