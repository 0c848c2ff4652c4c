"""Periodic tasks: schedules declared with their task, kept in the backend, run by any worker.

Nothing has to run for a tick to come due. Registration (every worker at start, and
``shoal migrate --app``) stores the app's schedules in the backend, retires those the code
no longer declares, and materialises the next tick of each schedule that has none pending:
an ordinary task scheduled for the tick's moment, with the schedule and the tick in its
metadata. The worker that starts a tick first materialises the one after it (so a crash
during the handler cannot break the chain: the tick runs again after its lease expires, and
the next one exists already), then runs the handler unless the missed-tick policy
(:func:`shoal.core.schedules.plan`) or a pause says not to. The backend de-duplicates ticks
by the schedule's watermark, so each tick becomes one task however many workers race.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from shoal.app.tasks import TaskDefinition
from shoal.core.errors import ConfigurationError, ScheduleNotFound
from shoal.core.models import NewTask, Task, utcnow
from shoal.core.schedule_records import (
    SCHEDULE_KEY,
    TICK_KEY,
    Advance,
    ScheduleRecord,
    ScheduleSpec,
    ScheduleState,
)
from shoal.core.schedules import Cadence, Cron, Every, Missed, Timing, due_at, plan

if TYPE_CHECKING:
    from shoal.app.application import App

TRIGGER_KEY = "shoal.trigger"
"""Metadata of a tick run by hand (``shoal schedules trigger``): outside the chain."""


class ScheduleOptions(TypedDict, total=False):
    """How a schedule is declared: ``cron`` or ``every``, and the rest optional."""

    cron: str
    """Five fields (``*/5 * * * *``), six with seconds first, or an alias (``@hourly``)."""
    every: timedelta
    """A fixed interval of whole seconds, aligned on the Unix epoch."""
    tz: str
    """The IANA timezone a cron expression is read in (default UTC)."""
    args: Mapping[str, Any]
    """The task's arguments, the same for every tick (validated now)."""
    missed: Missed
    """What to do with ticks that came due while no worker ran them (default: LATEST)."""
    catch_up: int
    """With ``missed=Missed.ALL``: at most this many missed ticks run (default 10)."""
    grace: timedelta
    """How late a tick may start before it counts as missed (default 30 s)."""
    jitter: timedelta
    """Spread each tick over this much time after its moment (default none)."""
    name: str
    """The schedule's name, unique in the backend (default: the task's name)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """One declared schedule of a task."""

    name: str
    task: TaskDefinition[Any, Any]
    timing: Timing
    payload: bytes

    @property
    def spec(self) -> ScheduleSpec:
        cadence = self.timing.cadence.describe()
        return ScheduleSpec(self.name, self.task.name, self.task.options.queue, cadence)

    def tick_task(self, tick: datetime, *, manual: bool = False) -> NewTask:
        """The task of ``tick``: due at the tick's moment plus its share of the jitter."""
        metadata = {SCHEDULE_KEY: self.name, TICK_KEY: tick.isoformat()}
        if manual:
            metadata[TRIGGER_KEY] = "manual"
        run_at = tick if manual else due_at(self.name, tick, self.timing.jitter)
        return self.task.prepare(self.payload, {"run_at": run_at, "metadata": metadata})


def declare(task: TaskDefinition[Any, Any], options: ScheduleOptions) -> Schedule:
    """Check a declaration and build its schedule; bad input raises ConfigurationError."""
    cron, every = options.get("cron"), options.get("every")
    if (cron is None) == (every is None):
        raise ConfigurationError(f"schedule {task.name} with cron=... or every=..., not both")
    if "tz" in options and cron is None:
        raise ConfigurationError("tz= applies to cron schedules; every= ticks in UTC")
    cadence: Cadence = (
        Every(every) if every is not None else Cron(cron or "", options.get("tz", "UTC"))
    )
    timing = Timing(
        cadence,
        missed=Missed(options.get("missed", Missed.LATEST)),
        catch_up=options.get("catch_up", 10),
        grace=options.get("grace", timedelta(seconds=30)),
        jitter=options.get("jitter", timedelta(0)),
    )
    payload = task.codec.encode((), dict(options.get("args", {})))
    return Schedule(options.get("name", task.name), task, timing, payload)


async def register(app: App) -> list[ScheduleRecord]:
    """Store the app's schedules (retiring the ones it no longer declares) and materialise
    the next tick of each active schedule that has none pending."""
    specs = [schedule.spec for schedule in app.schedules.values()]
    records = await app.backend.register_schedules(app.name, specs)
    now = utcnow()
    for record in records:
        schedule = app.schedules.get(record.name)
        if schedule is None or record.state is not ScheduleState.ACTIVE or record.pending:
            continue
        # After the watermark, not after now: a chain broken while workers were down
        # resumes where it stopped, and the missed-tick policy decides when that tick runs.
        since = record.next_tick_at or now
        await _materialise(app, schedule, record.next_tick_at, schedule.timing.cadence.after(since))
    return await app.backend.schedules(app.name)


def first_due(app: App, records: list[ScheduleRecord]) -> datetime | None:
    """When the first pending tick of ``records`` (this app's) comes due, if any does."""
    dues = [
        due_at(r.name, r.next_tick_at, app.schedules[r.name].timing.jitter)
        for r in records
        if r.pending and r.next_tick_at is not None and r.name in app.schedules
    ]
    return min(dues, default=None)


async def resume(app: App, name: str) -> ScheduleRecord:
    """Resume a paused schedule: its next tick is the first one after now (the ticks of the
    pause are not missed ticks, they are skipped)."""
    schedule = _declared(app, name)
    record = await app.backend.pause_schedule(name, False)
    if record.state is ScheduleState.ACTIVE and not record.pending:
        since = max(record.next_tick_at or utcnow(), utcnow())
        await _materialise(app, schedule, record.next_tick_at, schedule.timing.cadence.after(since))
    return _named(await app.backend.schedules(app.name), name)


async def trigger(app: App, name: str) -> str:
    """Run the schedule's task now, once, outside its chain; returns the task's id."""
    schedule = _declared(app, name)
    [task_id] = await app.push_many([schedule.tick_task(utcnow(), manual=True)])
    return task_id


@dataclass(frozen=True, slots=True)
class TickStart:
    """What :func:`start_tick` decided about a tick a worker is about to run."""

    run: bool
    scheduled_at: datetime
    late: bool = False
    skipped: int = 0
    next_due: datetime | None = None
    """When the tick this call materialised comes due (None: it materialised none), so
    that the worker can wake for it rather than wait for its next poll."""


async def start_tick(app: App, task: Task) -> TickStart | None:
    """For a tick's task (None for any other task): materialise the next tick, then say
    whether the handler runs. Backend errors propagate: the attempt fails and is retried."""
    name = task.metadata.get(SCHEDULE_KEY)
    moment = task.metadata.get(TICK_KEY)
    if name is None or moment is None:
        return None
    tick = datetime.fromisoformat(moment)
    if task.metadata.get(TRIGGER_KEY):
        return TickStart(run=True, scheduled_at=tick)
    schedule = app.schedules.get(name)
    backend = app.backend
    if schedule is None:
        # Declared by another version of the app: run it unless retired; that app's
        # workers materialise its chain.
        seen = await backend.advance_schedule(name, expected=None, tick=None, tick_at=None)
        return TickStart(run=seen is not Advance.RETIRED, scheduled_at=tick)
    now = utcnow()
    decided = plan(schedule.timing, tick, due_at(name, tick, schedule.timing.jitter), now)
    # The missed-tick policy judges a tick's first attempt; a tick that failed or lost its
    # worker runs again however late its retry is, as any task does.
    wanted = decided.run or task.attempts > 1
    outcome = await backend.advance_schedule(
        name,
        expected=tick,
        tick=schedule.tick_task(decided.next_tick),
        tick_at=decided.next_tick,
        ran=tick if wanted else None,
    )
    runs = wanted and outcome in (Advance.ADVANCED, Advance.STALE)
    # Not run: the policy's count of skipped ticks, or this one alone (paused, retired).
    skipped = 0 if runs else (1 if wanted else decided.skipped)
    next_due = None
    if outcome is Advance.ADVANCED:
        next_due = due_at(name, decided.next_tick, schedule.timing.jitter)
    return TickStart(runs, tick, late=decided.late, skipped=skipped, next_due=next_due)


async def _materialise(
    app: App, schedule: Schedule, expected: datetime | None, tick: datetime
) -> Advance:
    task = schedule.tick_task(tick)
    return await app.backend.advance_schedule(
        schedule.name, expected=expected, tick=task, tick_at=tick
    )


def _declared(app: App, name: str) -> Schedule:
    schedule = app.schedules.get(name)
    if schedule is None:
        raise ScheduleNotFound(name)
    return schedule


def _named(records: list[ScheduleRecord], name: str) -> ScheduleRecord:
    for record in records:
        if record.name == name:
            return record
    raise ScheduleNotFound(name)
