"""The PostgreSQL backend's schedule primitives: each one transaction that locks the rows it
decides on (``FOR UPDATE``) and applies the shared rules
(:mod:`shoal.backends.shared.schedules`) to them, so concurrent callers queue up rather
than both deciding from the same watermark."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from shoal.backends.base import OnConflict
from shoal.backends.postgres.connect import Connections
from shoal.backends.postgres.enqueue import enqueue
from shoal.backends.postgres.sessions import AsyncpgSession
from shoal.backends.shared.schedules import advanced, named, registered, schedule_record
from shoal.backends.shared.storable import check_storable
from shoal.backends.shared.wakeups import Wakeups
from shoal.core.models import NewTask
from shoal.core.schedule_records import Advance, ScheduleRecord, ScheduleSpec, ScheduleState


class PostgresSchedules:
    """Mixed into :class:`~shoal.backends.postgres.backend.PostgresBackend`."""

    _db: Connections
    _sql: dict[str, str]
    _wakeups: Wakeups

    async def register_schedules(
        self, app: str, schedules: Sequence[ScheduleSpec]
    ) -> list[ScheduleRecord]:
        names = [spec.name for spec in schedules]
        async with self._db.acquire("registering schedules") as conn, conn.transaction():
            known = await conn.fetch(self._sql["schedules_known"], app, names)
            records = registered(app, schedules, [schedule_record(row) for row in known])
            columns = [
                [getattr(r, field) for r in records]
                for field in ("name", "app", "task", "queue", "cadence")
            ]
            await conn.execute(
                self._sql["schedules_store"], *columns, [r.state.value for r in records]
            )
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
        async with self._db.acquire("advancing a schedule") as conn, conn.transaction():
            row = await conn.fetchrow(self._sql["schedule_locked"], name)
            step = advanced(
                None if row is None else schedule_record(row), expected, tick, tick_at, ran
            )
            if step.push and tick is not None:
                session = AsyncpgSession(conn, savepoint=True)
                await enqueue(session, self._sql, [tick], OnConflict.RAISE)
            if (record := step.record) is not None:
                await conn.execute(
                    self._sql["schedule_advance"],
                    name,
                    record.next_tick_at,
                    record.next_task_id,
                    record.last_run_at,
                )
        if step.push and tick is not None:
            self._wakeups.work([tick.queue])
        return step.verdict

    async def schedules(self, app: str | None = None) -> list[ScheduleRecord]:
        async with self._db.acquire("listing schedules") as conn:
            rows = await conn.fetch(self._sql["schedules"], app)
        return [schedule_record(row) for row in rows]

    async def pause_schedule(self, name: str, paused: bool) -> ScheduleRecord:
        state = ScheduleState.PAUSED if paused else ScheduleState.ACTIVE
        async with self._db.acquire("pausing a schedule") as conn:
            await conn.execute(self._sql["schedule_set_state"], name, state.value)
        return named(await self.schedules(), name)
