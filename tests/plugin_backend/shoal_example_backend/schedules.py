"""The example backend's schedule primitives: one locked read-change-write each, applying the
rules shoal shares among backends (``shoal.backends.shared.schedules``)."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from shoal.backends.shared.schedules import (
    advanced,
    epoch_moment,
    named,
    registered,
    schedule_record,
)
from shoal.backends.shared.storable import check_storable
from shoal.core.errors import ScheduleNotFound
from shoal.core.models import UNFINISHED, NewTask, utcnow
from shoal.core.schedule_records import Advance, ScheduleRecord, ScheduleSpec, ScheduleState
from shoal_example_backend.records import record_of

State = dict[str, dict[str, dict[str, Any]]]
T = TypeVar("T")


class JsonSchedules(abc.ABC):
    """Mixed into the backend; the schedules live under the file's ``schedules`` key."""

    @abc.abstractmethod
    async def _transact(self, change: Callable[[State], T], *, write: bool = True) -> T:
        """One locked read-change-write of the file."""

    @abc.abstractmethod
    def _wake(self) -> None:
        """Wake this process's waiters."""

    async def register_schedules(
        self, app: str, schedules: Sequence[ScheduleSpec]
    ) -> list[ScheduleRecord]:
        names = {spec.name for spec in schedules}

        def register(state: State) -> list[ScheduleRecord]:
            stored = state.setdefault("schedules", {})
            known = [_record(r) for r in stored.values() if r["app"] == app or r["name"] in names]
            for record in registered(app, schedules, known):
                stored[record.name] = _plain(record)
            return _listed(state, app)

        return await self._transact(register)

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

        def advance(state: State) -> Advance:
            stored = state.setdefault("schedules", {})
            found = _record(stored[name]) if name in stored else None
            step = advanced(found, expected, tick, tick_at, ran)
            if step.push and tick is not None:
                state["tasks"][tick.id] = record_of(tick, utcnow().timestamp())
            if step.record is not None:
                stored[name] = _plain(step.record)
            return step.verdict

        verdict = await self._transact(advance)
        self._wake()
        return verdict

    async def schedules(self, app: str | None = None) -> list[ScheduleRecord]:
        return await self._transact(lambda state: _listed(state, app), write=False)

    async def pause_schedule(self, name: str, paused: bool) -> ScheduleRecord:
        def pause(state: State) -> ScheduleRecord:
            stored = state.setdefault("schedules", {})
            if name not in stored:
                raise ScheduleNotFound(name)
            if stored[name]["state"] != ScheduleState.RETIRED:
                stored[name]["state"] = ScheduleState.PAUSED if paused else ScheduleState.ACTIVE
            return named(_listed(state, None), name)

        return await self._transact(pause)


def _listed(state: State, app: str | None) -> list[ScheduleRecord]:
    found = []
    for _name, plain in sorted(state.get("schedules", {}).items()):
        if app is None or plain["app"] == app:
            task = state["tasks"].get(plain["next_task_id"] or "")
            pending = task is not None and task["status"] in UNFINISHED
            found.append(_record(plain, pending=pending))
    return found


def _record(plain: dict[str, Any], *, pending: bool = False) -> ScheduleRecord:
    return schedule_record({**plain, "pending": pending}, epoch_moment)


def _plain(record: ScheduleRecord) -> dict[str, Any]:
    plain = dataclasses.asdict(record)
    plain.pop("pending")
    for field in ("next_tick_at", "last_run_at"):
        plain[field] = None if plain[field] is None else plain[field].timestamp()
    return plain
