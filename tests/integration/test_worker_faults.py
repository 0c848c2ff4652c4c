"""A worker in this process under hostile handlers and hooks, and through an outage.

Matrix: the ``backend_url`` fixture (``tests/integration/conftest.py``) over memory, SQLite,
PostgreSQL and Redis, on real servers: leases, their fence and the recorded errors are each
backend's own, so each is tried. The outage is PostgreSQL's (``restartable_postgres``, a
server of its own that the test stops and starts).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest
from prometheus_client import REGISTRY

from shoal import App, Event, RetryPolicy, WorkerSettings
from shoal.core.models import TaskStatus
from shoal.testing import drain
from shoal.worker import Worker
from tests.servers.postgres import PostgresServer


@pytest.fixture
async def app(backend_url: str) -> AsyncIterator[App]:
    app = App(backend_url)
    await app.open()
    await app.backend.setup()
    yield app
    await app.close()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition that no event signals (it reads the worker's counters)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def sample(name: str, task: str) -> float:
    labels = {"queue": "default", "task": task}
    return REGISTRY.get_sample_value(f"{name}_total", labels) or 0.0


async def test_an_outcome_the_lease_fence_refuses_is_discarded_not_a_success(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []
    discarded = asyncio.Event()

    @app.on("task_succeeded")
    @app.on("task_retrying")
    @app.on("task_dead")
    @app.on("task_released")
    @app.on("task_discarded")
    def record(event: Event) -> None:
        events.append(event.name)
        if event.name == "task_discarded":
            discarded.set()

    release = asyncio.Event()

    @app.task
    async def stuck() -> None:
        await release.wait()

    counters = ("shoal_tasks_succeeded", "shoal_tasks_failed", "shoal_tasks_discarded")
    before = {name: sample(name, stuck.name) for name in counters}
    task_id = (await stuck.push()).id
    settings = WorkerSettings(concurrency=1, prefetch=0, lease_seconds=0.5, reap_interval=60)
    stalled = Worker(app, settings)  # one slot, taken: it claims nothing more
    stalled._heartbeats.due = float("inf")  # a stalled loop: no heartbeats, no reaping
    running = asyncio.create_task(stalled.run())
    await until(lambda: stalled.in_flight == 1)
    async with asyncio.timeout(10):  # as another worker's reaper would, once it expired
        while (await app.backend.reap(worker_timeout=60)).requeued != (task_id,):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    [claim] = await app.backend.claim(["default"], "rescuer", 1, 30)
    caplog.set_level(logging.INFO, "shoal.worker")
    release.set()
    async with asyncio.timeout(10):
        await discarded.wait()
    stalled.stop()
    await running

    assert events == ["task_discarded"]
    after = {name: sample(name, stuck.name) for name in counters}
    assert after["shoal_tasks_discarded"] == before["shoal_tasks_discarded"] + 1
    assert after["shoal_tasks_succeeded"] == before["shoal_tasks_succeeded"]
    assert after["shoal_tasks_failed"] == before["shoal_tasks_failed"]
    messages = [r.getMessage() for r in caplog.records if getattr(r, "task_id", "") == task_id]
    assert any(m.startswith("task discarded: the lease was lost") for m in messages), messages
    assert "task succeeded" not in messages
    task = await app.backend.get(task_id)
    assert task is not None and task.status is TaskStatus.RUNNING and task.worker_id == "rescuer"
    await app.backend.ack([claim.lease])


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot say")

    def __repr__(self) -> str:
        raise RuntimeError("cannot say either")


async def test_an_error_that_cannot_be_described_still_ends_the_attempt(app: App) -> None:
    @app.task(retry=RetryPolicy(max_attempts=1))
    async def hostile() -> None:
        raise Unprintable

    @app.task(retry=RetryPolicy(max_attempts=1))
    def hostile_in_a_thread() -> None:
        raise Unprintable

    ids = [(await hostile.push()).id, (await hostile_in_a_thread.push()).id]
    await drain(app, timeout=10)  # the attempts end now, not a lease expiry later
    for task_id in ids:
        task = await app.backend.get(task_id)
        assert task is not None and task.status is TaskStatus.DEAD and task.attempts == 1
        assert task.last_error == "Unprintable: (its message could not be read)"
        assert task.lease_expirations == 0


async def test_slow_hooks_delay_no_heartbeat(app: App) -> None:
    """A hook that takes its time, async or blocking, must not cost a lease."""
    hooked: list[str] = []

    @app.on("task_started")
    async def slow(event: Event) -> None:
        await asyncio.sleep(0.3)
        hooked.append("slow")

    @app.on("task_started")
    def blocking(event: Event) -> None:
        time.sleep(0.2)  # runs in a thread: the event loop goes on
        hooked.append("blocking")

    @app.task
    async def work() -> None:
        await asyncio.sleep(0.05)

    ids = [h.id for h in await work.push_many([{}] * 6)]
    worker = Worker(app, WorkerSettings(concurrency=6, lease_seconds=0.6, poll_interval=0.05))
    running = asyncio.create_task(worker.run())
    reaped: list[str] = []

    async def reaper() -> None:  # another worker's reaper, taking any expired lease at once
        while True:
            reaped.extend((await app.backend.reap(worker_timeout=60)).requeued)
            await asyncio.sleep(0.05)

    reaping = asyncio.create_task(reaper())
    try:
        await until(lambda: worker.processed == 6 and len(hooked) == 12)
        worker.stop()
        await running
    finally:
        reaping.cancel()
    assert reaped == []
    for task_id in ids:
        task = await app.backend.get(task_id)
        assert task is not None and task.status is TaskStatus.DONE and task.attempts == 1


async def test_heartbeats_keep_their_cadence_through_an_outage(
    restartable_postgres: PostgresServer,
) -> None:
    """Claims and records back off during an outage; heartbeats are tried at their cadence
    or faster, so the first one after the outage renews the leases before they expire."""
    server = restartable_postgres
    database = server.create_database()
    app = App(server.url(database))
    await app.open()
    await app.backend.setup()

    @app.task
    async def long() -> None:
        await asyncio.sleep(6)

    ids = [h.id for h in await long.push_many([{}] * 5)]
    settings = WorkerSettings(concurrency=5, prefetch=0, lease_seconds=6, poll_interval=0.1)
    worker = Worker(app, settings)  # heartbeats every second
    heartbeat = worker.backend.heartbeat
    attempts: list[float] = []

    async def timed_heartbeat(*args: object, **kwargs: object) -> list[str]:
        attempts.append(time.monotonic())
        return await heartbeat(*args, **kwargs)  # type: ignore[arg-type]

    worker.backend.heartbeat = timed_heartbeat  # type: ignore[method-assign]
    running = asyncio.create_task(worker.run())
    try:
        await until(lambda: len(worker._running) == 5)
        await asyncio.to_thread(server.interrupt, 4.0)  # longer than any claim back-off
        await until(lambda: worker.processed == 5, timeout=20)
    finally:
        worker.stop()
        await running
        await app.close()
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert max(gaps) < settings.heartbeat_interval + 0.35, gaps
    async with App(server.url(database)) as check:
        for task_id in ids:
            task = await check.backend.get(task_id)
            assert task is not None and task.status is TaskStatus.DONE
            assert (task.attempts, task.lease_expirations) == (1, 0)
    server.drop_database(database)
