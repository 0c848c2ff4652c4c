"""Periodic tasks through the app and a worker on the in-memory backend: declaration,
registration, the chain of ticks, the scheduled time, pause, resume, trigger, retirement and
what a late tick does under each missed-tick policy."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from shoal import App, Context, WorkerSettings
from shoal.app import periodic
from shoal.core.errors import ConfigurationError, PayloadInvalid, ScheduleNotFound
from shoal.core.models import TaskStatus, utcnow
from shoal.core.schedule_records import SCHEDULE_KEY, TICK_KEY, ScheduleState
from shoal.core.schedules import Missed
from shoal.worker import Worker

SECOND = timedelta(seconds=1)


@pytest.fixture
async def app() -> AsyncIterator[App]:
    app = App("memory://", name="tests")
    await app.open()
    yield app
    await app.close()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def fast() -> WorkerSettings:
    return WorkerSettings(poll_interval=0.05, reap_interval=0.05)


async def test_an_every_second_schedule_runs_each_tick_once_knowing_its_time(app: App) -> None:
    seen: list[tuple[datetime | None, str]] = []

    @app.periodic(every=SECOND, args={"label": "x"})
    @app.task
    async def tick(context: Context, label: str) -> None:
        seen.append((context.scheduled_at, context.metadata[TICK_KEY]))

    def ran() -> float:
        value = REGISTRY.get_sample_value("shoal_ticks_run_total", {"schedule": tick.name})
        return value or 0.0

    before = ran()
    workers = [Worker(app, fast()) for _ in range(3)]
    running = [asyncio.create_task(w.run()) for w in workers]
    await until(lambda: len(seen) >= 4)
    for worker in workers:
        worker.stop()
    await asyncio.gather(*running)
    assert ran() - before == len(seen)  # the metric counts each tick run
    moments = [moment for moment, _ in seen]
    assert all(m is not None for m in moments)
    assert len(set(moments)) == len(moments)  # each tick once, across three workers
    assert [m.isoformat() for m in moments if m] == [text for _, text in seen]
    assert all(b - a == SECOND for a, b in itertools.pairwise(moments) if a and b)
    [record] = await app.backend.schedules("tests")
    assert record.pending and record.last_run_at == moments[-1]


async def test_declarations_are_checked_when_made(app: App) -> None:
    @app.task
    async def job(n: int) -> None:
        pass

    with pytest.raises(ConfigurationError, match=r"cron=\.\.\. or every=\.\.\., not both"):
        app.schedule(job, cron="* * * * *", every=SECOND, args={"n": 1})
    with pytest.raises(ConfigurationError, match="tz= applies to cron"):
        app.schedule(job, every=SECOND, tz="Europe/Paris", args={"n": 1})
    with pytest.raises(PayloadInvalid):
        app.schedule(job, every=SECOND, args={"n": "many"})
    app.schedule(job, every=SECOND, args={"n": 1})
    with pytest.raises(ConfigurationError, match="already declared: give name="):
        app.schedule(job, cron="@hourly", args={"n": 2})
    app.schedule(job, cron="@hourly", args={"n": 2}, name="hourly-job")
    with pytest.raises(ConfigurationError, match=r"above @app\.task"):
        app.periodic(every=SECOND)(lambda: None)  # type: ignore[arg-type]
    assert sorted(app.schedules) == ["hourly-job", job.name]


async def test_registration_materialises_one_tick_and_repairs_a_broken_chain(app: App) -> None:
    @app.periodic(cron="0 3 * * *", tz="Europe/Berlin")
    @app.task
    async def nightly() -> None:
        pass

    [record] = await periodic.register(app)
    assert (record.state, record.pending, record.cadence) == (
        ScheduleState.ACTIVE,
        True,
        "cron 0 3 * * * Europe/Berlin",
    )
    assert record.next_tick_at is not None and record.next_tick_at > utcnow()
    [again] = await periodic.register(app)
    assert again.next_task_id == record.next_task_id  # no second tick
    assert record.next_task_id and await app.backend.cancel(record.next_task_id)
    [repaired] = await periodic.register(app)
    assert repaired.pending and repaired.next_task_id != record.next_task_id
    assert repaired.next_tick_at == record.next_tick_at + timedelta(days=1)


async def test_schedules_no_longer_declared_are_retired(app: App) -> None:
    @app.periodic(every=timedelta(hours=1))
    @app.task
    async def hourly() -> None:
        pass

    await periodic.register(app)
    successor = App("memory://", name="tests")
    successor.use_backend(app.backend)
    [record] = await periodic.register(successor)
    assert record.state is ScheduleState.RETIRED
    assert record.next_task_id is not None
    tick = await app.backend.get(record.next_task_id)
    assert tick is not None
    start = await periodic.start_tick(successor, tick)
    assert start is not None and start.run is False  # it comes due, and does not run


@pytest.mark.parametrize(
    ("missed", "runs", "next_offset", "skipped"),
    [
        (Missed.SKIP, False, 310, 31),
        (Missed.LATEST, False, 300, 30),
        (Missed.ALL, False, 280, 28),
    ],
)
async def test_a_tick_found_long_overdue_follows_its_missed_policy(
    app: App, missed: Missed, runs: bool, next_offset: int, skipped: int
) -> None:
    @app.task
    async def job() -> None:
        pass

    app.schedule(job, every=timedelta(seconds=10), missed=missed, catch_up=3)
    now = utcnow()
    first = app.schedules[job.name].timing.cadence.at_or_before(now) - timedelta(seconds=300)
    schedule = app.schedules[job.name]
    await app.backend.register_schedules(app.name, [schedule.spec])
    # The chain as it stood when the workers stopped: its pending tick 300 s ago.
    overdue = schedule.tick_task(first)
    await app.backend.advance_schedule(job.name, expected=None, tick=overdue, tick_at=first)
    task = await app.backend.get(overdue.id)
    assert task is not None
    start = await periodic.start_tick(app, task)
    assert start is not None
    assert (start.run, start.late, start.skipped) == (runs, True, skipped)
    [after] = await app.backend.schedules()
    assert after.next_tick_at == first + timedelta(seconds=next_offset)


async def test_pause_resume_and_trigger(app: App) -> None:
    ran: list[str] = []

    @app.periodic(every=timedelta(hours=1))
    @app.task
    async def hourly(context: Context) -> None:
        ran.append(context.metadata[SCHEDULE_KEY])

    [record] = await periodic.register(app)
    await app.backend.pause_schedule(hourly.name, True)
    tick = await app.backend.get(record.next_task_id or "")
    assert tick is not None
    start = await periodic.start_tick(app, tick)
    assert start is not None and (start.run, start.skipped) == (False, 1)
    resumed = await periodic.resume(app, hourly.name)
    assert resumed.state is ScheduleState.ACTIVE and resumed.pending
    assert resumed.next_tick_at and resumed.next_tick_at > utcnow()
    task_id = await periodic.trigger(app, hourly.name)
    worker = Worker(app, fast())
    running = asyncio.create_task(worker.run())
    await until(lambda: len(ran) == 1)
    worker.stop()
    await running
    triggered = await app.backend.get(task_id)
    assert triggered is not None and triggered.status is TaskStatus.DONE
    with pytest.raises(ScheduleNotFound, match="'nope'"):
        await periodic.trigger(app, "nope")


async def test_a_second_attempt_of_a_tick_runs_however_late(app: App) -> None:
    @app.task
    async def job() -> None:
        pass

    app.schedule(job, every=timedelta(seconds=10), missed=Missed.SKIP, grace=SECOND)
    schedule = app.schedules[job.name]
    await app.backend.register_schedules(app.name, [schedule.spec])
    old = schedule.timing.cadence.at_or_before(utcnow()) - timedelta(seconds=60)
    overdue = schedule.tick_task(old)
    await app.backend.advance_schedule(job.name, expected=None, tick=overdue, tick_at=old)
    [claim] = await app.backend.claim([schedule.task.options.queue], "w", 1, 30)
    first = await periodic.start_tick(app, claim.task)
    assert first is not None and first.run is False  # its first attempt: missed, skipped
    retried = dataclasses.replace(claim.task, attempts=2)  # as after a lost lease
    second = await periodic.start_tick(app, retried)
    assert second is not None and (second.run, second.skipped) == (True, 0)


async def test_a_worker_wakes_for_the_tick_it_materialised_not_at_its_next_poll(
    app: App,
) -> None:
    late: list[float] = []

    @app.periodic(every=SECOND)
    @app.task
    async def tick(context: Context) -> None:
        assert context.scheduled_at is not None
        late.append((utcnow() - context.scheduled_at).total_seconds())

    worker = Worker(app, WorkerSettings(poll_interval=10.0, reap_interval=0.05))
    running = asyncio.create_task(worker.run())
    await until(lambda: len(late) >= 4, timeout=20)
    worker.stop()
    await running
    # The first tick may have come due while the worker started; the later ones are woken
    # for: on time, where a 10 s poll would have made them 10 s late.
    assert max(late[1:]) < 0.5, late
