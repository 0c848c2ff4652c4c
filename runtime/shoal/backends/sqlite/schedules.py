"""The SQLite backend's schedule primitives: each one ``BEGIN IMMEDIATE`` transaction that
applies the shared rules (:mod:`shoal.backends.shared.schedules`) to the rows it read."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from datetime import datetime

from shoal.backends.shared.schedules import (
    advanced,
    epoch_moment,
    named,
    registered,
    schedule_record,
)
from shoal.backends.shared.storable import check_storable
from shoal.backends.shared.wakeups import Wakeups
from shoal.backends.sqlfiles import queries
from shoal.backends.sqlite.support import Runs, immediate, row_of
from shoal.core.models import NewTask
from shoal.core.schedule_records import Advance, ScheduleRecord, ScheduleSpec, ScheduleState

_SQL = queries("shoal.backends.sqlite")


class SQLiteSchedules(Runs):
    """Mixed into :class:`~shoal.backends.sqlite.backend.SQLiteBackend`."""

    _wakeups: Wakeups

    async def register_schedules(
        self, app: str, schedules: Sequence[ScheduleSpec]
    ) -> list[ScheduleRecord]:
        names = json.dumps([spec.name for spec in schedules])

        def register(db: sqlite3.Connection) -> None:
            with immediate(db):
                known = db.execute(_SQL["schedules_known"], {"app": app, "names": names})
                now = time.time()
                for record in registered(app, schedules, [_record(row) for row in known]):
                    db.execute(_SQL["schedule_store"], _stored(record, now))

        await self._run(register)
        return await self.schedules(app)

    async def advance_schedule(
        self,
        name: str,
        *,
        expected: datetime | None,
        tick: NewTask | None,
        tick_at: datetime | None,
        ran: datetime | None = None,
    ) -> Advance:
        if tick is not None:
            check_storable([tick])

        def advance(db: sqlite3.Connection) -> Advance:
            with immediate(db):
                row = db.execute(_SQL["schedule"], {"name": name}).fetchone()
                step = advanced(None if row is None else _record(row), expected, tick, tick_at, ran)
                now = time.time()
                if step.push and tick is not None:
                    db.execute(_SQL["insert"], row_of(tick, now))
                if step.record is not None:
                    db.execute(_SQL["schedule_advance"], _advanced(step.record, now))
                return step.verdict

        verdict = await self._run(advance)
        if verdict is Advance.ADVANCED and tick is not None:
            self._wakeups.work([tick.queue])
        return verdict

    async def schedules(self, app: str | None = None) -> list[ScheduleRecord]:
        rows = await self._run(lambda db: db.execute(_SQL["schedules"], {"app": app}).fetchall())
        return [_record(row) for row in rows]

    async def pause_schedule(self, name: str, paused: bool) -> ScheduleRecord:
        state = ScheduleState.PAUSED if paused else ScheduleState.ACTIVE
        arguments = {"name": name, "state": state.value, "now": time.time()}
        await self._run(lambda db: db.execute(_SQL["schedule_set_state"], arguments))
        return named(await self.schedules(), name)


def _record(row: sqlite3.Row) -> ScheduleRecord:
    return schedule_record(row, epoch_moment)


def _advanced(record: ScheduleRecord, now: float) -> dict[str, object]:
    return {
        "name": record.name,
        "next_tick_at": _epoch(record.next_tick_at),
        "next_task_id": record.next_task_id,
        "last_run_at": _epoch(record.last_run_at),
        "now": now,
    }


def _stored(record: ScheduleRecord, now: float) -> dict[str, object]:
    return {
        "name": record.name,
        "app": record.app,
        "task": record.task,
        "queue": record.queue,
        "cadence": record.cadence,
        "state": record.state.value,
        "now": now,
    }


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()
