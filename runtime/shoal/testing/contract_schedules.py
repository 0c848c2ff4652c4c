"""Contract cases for schedules: registration, retirement, the watermark and its ticks.

The rules: :mod:`shoal.backends.shared.schedules`; the records:
:mod:`shoal.core.schedule_records`. ``docs/backends.md`` explains them to backend authors.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from shoal.backends import Backend, open_backend
from shoal.core.errors import ScheduleNotFound
from shoal.core.ids import new_id
from shoal.core.models import NewTask, TaskStatus, utcnow
from shoal.core.schedule_records import (
    SCHEDULE_KEY,
    TICK_KEY,
    Advance,
    ScheduleSpec,
    ScheduleState,
)

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def spec(name: str = "nightly", cadence: str = "cron 0 3 * * * UTC") -> ScheduleSpec:
    return ScheduleSpec(name=name, task="tasks.work", queue="default", cadence=cadence)


def tick_task(name: str, tick_at: datetime, *, due_now: bool = False) -> NewTask:
    return NewTask(
        id=new_id(),
        queue="default",
        name="tasks.work",
        payload=b"{}",
        run_at=utcnow() if due_now else tick_at,
        max_attempts=3,
        metadata={SCHEDULE_KEY: name, TICK_KEY: tick_at.isoformat()},
    )


async def advance(
    backend: Backend, name: str, expected: datetime | None, tick_at: datetime, **kw: bool
) -> tuple[Advance, NewTask]:
    task = tick_task(name, tick_at, **kw)
    outcome = await backend.advance_schedule(name, expected=expected, tick=task, tick_at=tick_at)
    return outcome, task


async def test_registration_stores_new_schedules_active_with_no_tick(backend: Backend) -> None:
    records = await backend.register_schedules("app", [spec("b"), spec("a", "every 60s")])
    assert [(r.name, r.app, r.state, r.cadence) for r in records] == [
        ("a", "app", ScheduleState.ACTIVE, "every 60s"),
        ("b", "app", ScheduleState.ACTIVE, "cron 0 3 * * * UTC"),
    ]
    assert all(r.next_tick_at is None and not r.pending for r in records)
    assert [r.name for r in await backend.schedules()] == ["a", "b"]
    assert await backend.schedules("another") == []


async def test_advancing_pushes_the_tick_and_moves_the_watermark(backend: Backend) -> None:
    await backend.register_schedules("app", [spec()])
    outcome, task = await advance(backend, "nightly", None, T0)
    assert outcome is Advance.ADVANCED
    stored = await backend.get(task.id)
    assert stored is not None and stored.status is TaskStatus.QUEUED
    assert stored.metadata[TICK_KEY] == T0.isoformat()
    assert abs((stored.run_at - T0).total_seconds()) < 0.01
    [record] = await backend.schedules()
    assert (record.next_tick_at, record.next_task_id, record.pending) == (T0, task.id, True)


async def test_a_tick_is_materialised_once_whoever_asks(backend: Backend) -> None:
    await backend.register_schedules("app", [spec()])
    await advance(backend, "nightly", None, T0)
    nxt = T0 + timedelta(days=1)
    results = await asyncio.gather(*(advance(backend, "nightly", T0, nxt) for _ in range(8)))
    outcomes = sorted(outcome for outcome, _ in results)
    assert outcomes == [Advance.ADVANCED] + [Advance.STALE] * 7
    pushed = [t for _, t in results if await backend.get(t.id) is not None]
    assert len(pushed) == 1
    [record] = await backend.schedules()
    assert (record.next_tick_at, record.next_task_id) == (nxt, pushed[0].id)


async def test_the_watermark_outlives_the_tick_and_never_moves_back(backend: Backend) -> None:
    await backend.register_schedules("app", [spec()])
    _, task = await advance(backend, "nightly", None, T0, due_now=True)
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    await backend.ack([claim.lease])
    # The tick is done; asking again for it, from no watermark or from before it, is stale.
    assert (await advance(backend, "nightly", None, T0))[0] is Advance.STALE
    earlier = T0 - timedelta(days=1)
    assert (await advance(backend, "nightly", T0, earlier))[0] is Advance.STALE
    assert (await advance(backend, "nightly", T0, T0))[0] is Advance.STALE
    [record] = await backend.schedules()
    assert (record.next_tick_at, record.next_task_id, record.pending) == (T0, task.id, False)


async def test_two_processes_see_one_watermark(backend: Backend, backend_url: str) -> None:
    """Another instance on the same store (another process; memory:// has no other)."""
    if backend_url.startswith("memory:"):
        other = backend
    else:
        other = open_backend(backend_url)
        await other.open()
    try:
        await backend.register_schedules("app", [spec()])
        assert (await advance(other, "nightly", None, T0))[0] is Advance.ADVANCED
        assert (await advance(backend, "nightly", None, T0))[0] is Advance.STALE
        [record] = await other.register_schedules("app", [spec()])
    finally:
        if other is not backend:
            await other.close()
    assert (record.next_tick_at, record.pending) == (T0, True)


async def test_ran_records_the_newest_run_without_pushing(backend: Backend) -> None:
    await backend.register_schedules("app", [spec()])
    await advance(backend, "nightly", None, T0)
    for ran in (T0, T0 - timedelta(hours=1)):
        outcome = await backend.advance_schedule(
            "nightly", expected=T0, tick=None, tick_at=None, ran=ran
        )
        assert outcome is Advance.STALE
    [record] = await backend.schedules()
    assert (record.last_run_at, record.next_tick_at) == (T0, T0)


async def test_a_cancelled_tick_leaves_the_schedule_not_pending(backend: Backend) -> None:
    await backend.register_schedules("app", [spec()])
    _, task = await advance(backend, "nightly", None, T0)
    assert await backend.cancel(task.id)
    [record] = await backend.register_schedules("app", [spec()])
    assert (record.state, record.pending, record.next_tick_at) == (ScheduleState.ACTIVE, False, T0)


async def test_schedules_left_out_are_retired_and_stop_advancing(backend: Backend) -> None:
    await backend.register_schedules("app", [spec("kept"), spec("dropped")])
    await advance(backend, "dropped", None, T0)
    await backend.register_schedules("other", [spec("theirs")])
    records = await backend.register_schedules("app", [spec("kept", "every 5s")])
    assert [(r.name, r.state, r.cadence) for r in records] == [
        ("dropped", ScheduleState.RETIRED, "cron 0 3 * * * UTC"),
        ("kept", ScheduleState.ACTIVE, "every 5s"),
    ]
    assert (await advance(backend, "dropped", T0, T0 + timedelta(days=1)))[0] is Advance.RETIRED
    assert (await advance(backend, "nobody", None, T0))[0] is Advance.RETIRED
    [theirs] = await backend.schedules("other")
    assert theirs.state is ScheduleState.ACTIVE
    # Declared again, it comes back with its watermark.
    [back, _] = await backend.register_schedules("app", [spec("kept"), spec("dropped")])
    assert (back.state, back.next_tick_at) == (ScheduleState.ACTIVE, T0)


async def test_pause_stops_advancing_until_resumed_and_survives_registration(
    backend: Backend,
) -> None:
    await backend.register_schedules("app", [spec()])
    await advance(backend, "nightly", None, T0)
    paused = await backend.pause_schedule("nightly", True)
    assert paused.state is ScheduleState.PAUSED
    [record] = await backend.register_schedules("app", [spec()])
    assert record.state is ScheduleState.PAUSED
    nxt = T0 + timedelta(days=1)
    assert (await advance(backend, "nightly", T0, nxt))[0] is Advance.PAUSED
    resumed = await backend.pause_schedule("nightly", False)
    assert (resumed.state, resumed.next_tick_at) == (ScheduleState.ACTIVE, T0)
    assert (await advance(backend, "nightly", T0, nxt))[0] is Advance.ADVANCED


async def test_pausing_an_unknown_schedule_names_it(backend: Backend) -> None:
    with pytest.raises(ScheduleNotFound, match="'ghost'"):
        await backend.pause_schedule("ghost", True)


async def test_a_retired_schedule_cannot_be_resumed(backend: Backend) -> None:
    await backend.register_schedules("app", [spec()])
    await backend.register_schedules("app", [])
    record = await backend.pause_schedule("nightly", False)
    assert record.state is ScheduleState.RETIRED


async def test_stats_say_when_the_first_scheduled_task_comes_due(backend: Backend) -> None:
    """What the operator wakes a pool at zero by, ahead of a tick."""
    assert (await backend.stats(["default"]))["default"].next_due_in is None
    await backend.register_schedules("app", [spec()])
    soon = utcnow().replace(microsecond=0) + timedelta(seconds=90)
    await advance(backend, "nightly", None, soon)
    later = tick_task("nightly", soon + timedelta(hours=1))
    await backend.push([later, tick_task("nightly", utcnow(), due_now=True)])
    figures = (await backend.stats(["default"]))["default"]
    assert (figures.ready, figures.scheduled) == (1, 2)
    assert figures.next_due_in is not None and 85 < figures.next_due_in <= 90
