"""The schedule rules every backend applies alike: registration and the watermark's move.

PostgreSQL's SQL and Redis's Lua state the same rules in their own terms (their comments
point here); the memory, SQLite and plugin backends call these functions. Every backend
reads its stored schedules back through :func:`schedule_record`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from shoal.core.errors import ConfigurationError, ScheduleNotFound
from shoal.core.models import NewTask, from_epoch
from shoal.core.schedule_records import Advance, ScheduleRecord, ScheduleSpec, ScheduleState


def registered(
    app: str, specs: Sequence[ScheduleSpec], known: Iterable[ScheduleRecord]
) -> list[ScheduleRecord]:
    """The records to store after ``app`` declares ``specs``, given the ``known`` records of
    that app and of those names: declared ones updated (or new, active), the app's others
    retired. Sorted by name."""
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"two schedules share a name in {sorted(names)}")
    by_name = {record.name: record for record in known}
    result = {}
    for spec in specs:
        old = by_name.get(spec.name)
        state = ScheduleState.ACTIVE
        if old is not None and old.state is ScheduleState.PAUSED:
            state = ScheduleState.PAUSED
        base = old or ScheduleRecord(spec.name, app, spec.task, spec.queue, spec.cadence, state)
        result[spec.name] = dataclasses.replace(
            base, app=app, task=spec.task, queue=spec.queue, cadence=spec.cadence, state=state
        )
    for record in by_name.values():
        if record.name not in result and record.app == app:
            result[record.name] = dataclasses.replace(record, state=ScheduleState.RETIRED)
    return [result[name] for name in sorted(result)]


def judge_advance(
    record: ScheduleRecord | None, expected: datetime | None, tick_at: datetime | None
) -> Advance:
    """Whether the watermark moves from ``expected`` to ``tick_at``: only for an active
    schedule whose watermark is ``expected``, and only forward."""
    if record is None or record.state is ScheduleState.RETIRED:
        return Advance.RETIRED
    if record.state is ScheduleState.PAUSED:
        return Advance.PAUSED
    if tick_at is None or record.next_tick_at != expected:
        return Advance.STALE
    if expected is not None and tick_at <= expected:
        return Advance.STALE
    return Advance.ADVANCED


@dataclasses.dataclass(frozen=True, slots=True)
class Advanced:
    """What :meth:`~shoal.backends.base.Backend.advance_schedule` does to the store."""

    verdict: Advance
    record: ScheduleRecord | None
    """The schedule to write back; None: write nothing."""
    push: bool
    """Whether to store the tick's task, in the same atomic step."""


def advanced(
    record: ScheduleRecord | None,
    expected: datetime | None,
    tick: NewTask | None,
    tick_at: datetime | None,
    ran: datetime | None,
) -> Advanced:
    """The whole of ``advance_schedule`` on a schedule read inside the atomic step."""
    verdict = judge_advance(record, expected, tick_at)
    if record is None or verdict is Advance.RETIRED:
        return Advanced(verdict, None, push=False)
    updated = dataclasses.replace(record, last_run_at=later_run(record, ran))
    if verdict is Advance.ADVANCED and tick is not None:
        updated = dataclasses.replace(updated, next_tick_at=tick_at, next_task_id=tick.id)
        return Advanced(verdict, updated, push=True)
    return Advanced(verdict, updated, push=False)


def later_run(record: ScheduleRecord, ran: datetime | None) -> datetime | None:
    """The last run once a handler started for the tick ``ran``: the later of the two."""
    if ran is None or record.state is ScheduleState.RETIRED:
        return record.last_run_at
    if record.last_run_at is None or ran > record.last_run_at:
        return ran
    return record.last_run_at


SCHEDULE_FIELDS = (
    "name",
    "app",
    "task",
    "queue",
    "cadence",
    "state",
    "next_tick_at",
    "next_task_id",
    "last_run_at",
    "pending",
)
"""A stored schedule's fields, in the order Redis's ``schedule_read.lua`` replies with them."""


class StoredSchedule(Protocol):
    """A stored schedule read by field name: a ``sqlite3.Row``, an asyncpg ``Record``, a dict."""

    def __getitem__(self, field: str, /) -> Any: ...


def _as_stored(moment: Any) -> datetime | None:
    return moment  # type: ignore[no-any-return]


def schedule_record(
    row: StoredSchedule, moment: Callable[[Any], datetime | None] = _as_stored
) -> ScheduleRecord:
    """The record of a stored schedule that has :data:`SCHEDULE_FIELDS`; ``moment`` turns a
    stored time (an epoch, microseconds) into an aware datetime, or None where none is set.
    An empty task id (Redis stores no None) is None."""
    return ScheduleRecord(
        name=str(row["name"]),
        app=str(row["app"]),
        task=str(row["task"]),
        queue=str(row["queue"]),
        cadence=str(row["cadence"]),
        state=ScheduleState(str(row["state"])),
        next_tick_at=moment(row["next_tick_at"]),
        next_task_id=row["next_task_id"] or None,
        pending=bool(row["pending"]),
        last_run_at=moment(row["last_run_at"]),
    )


def epoch_moment(value: float | None) -> datetime | None:
    """A time stored as seconds since the epoch (SQLite, the example plugin)."""
    return None if value is None else from_epoch(value)


def named(records: Iterable[ScheduleRecord], name: str) -> ScheduleRecord:
    """The record of schedule ``name`` among ``records``, or :class:`ScheduleNotFound`."""
    for record in records:
        if record.name == name:
            return record
    raise ScheduleNotFound(name)
