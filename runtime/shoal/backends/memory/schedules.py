"""The memory backend's schedule primitives: records in a dict, the shared rules
(:mod:`shoal.backends.shared.schedules`) applied on the event loop, so each call is atomic.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from datetime import datetime

from shoal.backends.base import OnConflict
from shoal.backends.shared.schedules import advanced, registered
from shoal.core.errors import ScheduleNotFound
from shoal.core.models import UNFINISHED, NewTask, Task
from shoal.core.schedule_records import Advance, ScheduleRecord, ScheduleSpec, ScheduleState


class MemorySchedules(abc.ABC):
    """Mixed into :class:`~shoal.backends.memory.backend.MemoryBackend`."""

    _tasks: dict[str, Task]
    _schedules: dict[str, ScheduleRecord]

    @abc.abstractmethod
    async def push(
        self, tasks: Sequence[NewTask], *, on_conflict: OnConflict = OnConflict.RAISE
    ) -> list[str]:
        """Store ``tasks`` (the backend's push)."""

    async def register_schedules(
        self, app: str, schedules: Sequence[ScheduleSpec]
    ) -> list[ScheduleRecord]:
        names = {spec.name for spec in schedules}
        known = [r for r in self._schedules.values() if r.app == app or r.name in names]
        for record in registered(app, schedules, known):
            self._schedules[record.name] = record
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
        step = advanced(self._schedules.get(name), expected, tick, tick_at, ran)
        if step.push and tick is not None:
            await self.push([tick])  # no await inside: atomic with the write below
        if step.record is not None:
            self._schedules[name] = step.record
        return step.verdict

    async def schedules(self, app: str | None = None) -> list[ScheduleRecord]:
        return [
            self._with_pending(record)
            for name, record in sorted(self._schedules.items())
            if app is None or record.app == app
        ]

    def _with_pending(self, record: ScheduleRecord) -> ScheduleRecord:
        task = self._tasks.get(record.next_task_id or "")
        return dataclasses.replace(record, pending=task is not None and task.status in UNFINISHED)

    async def pause_schedule(self, name: str, paused: bool) -> ScheduleRecord:
        record = self._schedules.get(name)
        if record is None:
            raise ScheduleNotFound(name)
        if record.state is not ScheduleState.RETIRED:
            state = ScheduleState.PAUSED if paused else ScheduleState.ACTIVE
            record = self._schedules[name] = dataclasses.replace(record, state=state)
        return self._with_pending(record)
