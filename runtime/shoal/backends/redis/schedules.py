"""The Redis backend's schedule primitives, over the Lua scripts ``schedule_*.lua``.

Each schedule is a hash in its queue's slot (``{prefix:queue}:sched:<name>``), so that
``schedule_advance.lua`` moves the watermark and stores the tick's task in one script, as
Redis Cluster requires; ``{prefix}:schedules`` maps each name to its queue. Registration
reads the schedules, applies the shared rule (:mod:`shoal.backends.shared.schedules`) and
writes each one with its own script: atomic per schedule, not across them (the schedules
may sit in different slots). Two registrations of the same set converge.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from shoal.backends.redis import codec as rs
from shoal.backends.redis.codec import Arg
from shoal.backends.redis.keys import RedisKeys
from shoal.backends.redis.link import Script
from shoal.backends.shared.schedules import SCHEDULE_FIELDS, registered, schedule_record
from shoal.backends.shared.storable import check_storable
from shoal.backends.shared.wakeups import Wakeups
from shoal.core.errors import ConfigurationError, ScheduleNotFound
from shoal.core.models import NewTask
from shoal.core.schedule_records import Advance, ScheduleRecord, ScheduleSpec, ScheduleState

_CARRIED = ("next_tick_at", "next_task_id", "last_run_at")
"""The fields a schedule that changed queue takes along."""


class RedisSchedules(RedisKeys):
    """Mixed into :class:`~shoal.backends.redis.backend.RedisBackend`."""

    _channel: str
    _wakeups: Wakeups

    @property
    def _registry_key(self) -> str:
        return f"{{{self.prefix}}}:schedules"

    async def register_schedules(
        self, app: str, schedules: Sequence[ScheduleSpec]
    ) -> list[ScheduleRecord]:
        known = {r.name: r for r in await self._read(await self._registry())}
        names = {spec.name for spec in schedules}
        chosen = [r for r in known.values() if r.app == app or r.name in names]
        records = registered(app, schedules, chosen)
        commands: list[Script | tuple[Arg, ...]] = []
        for record in records:
            args: list[Arg] = [record.name, record.app, record.task, record.queue]
            args += [record.cadence, record.state.value]
            old = known.get(record.name)
            if old is not None and old.queue != record.queue:
                args += _carried(old)
                commands.append(("DEL", f"{self._base(old.queue)}:sched:{record.name}"))
            commands.append(Script("schedule_store", [self._base(record.queue)], args))
        if records:
            pairs = [item for r in records for item in (r.name, r.queue)]
            commands.append(("HSET", self._registry_key, *pairs))
            commands.append(("SADD", self._queues_key, *{r.queue for r in records}))
            await self._link.send(commands)
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
        [queue], _ = await self._link.send([("HGET", self._registry_key, name)])
        if queue is None:
            return Advance.RETIRED
        queue = rs.text(queue)
        args: list[Arg] = [self._channel, queue, name, _us(expected), _us(tick_at), _us(ran)]
        if tick is not None:
            check_storable([tick])
            if tick.queue != queue:
                raise ConfigurationError(
                    f"the tick of {name!r} names queue {tick.queue!r}, the schedule {queue!r}"
                )
            args += rs.new_task_fields(tick)
        [reply] = await self._link.scripts(Script("schedule_advance", [self._base(queue)], args))
        verdict = Advance(rs.text(reply))
        if verdict is Advance.ADVANCED and tick is not None:
            self._wakeups.work([queue])
        return verdict

    async def schedules(self, app: str | None = None) -> list[ScheduleRecord]:
        records = await self._read(await self._registry())
        return [r for r in records if app is None or r.app == app]

    async def pause_schedule(self, name: str, paused: bool) -> ScheduleRecord:
        registry = await self._registry()
        if name not in registry:
            raise ScheduleNotFound(name)
        state = ScheduleState.PAUSED if paused else ScheduleState.ACTIVE
        script = Script("schedule_state", [self._base(registry[name])], [name, state.value])
        await self._link.scripts(script)
        [record] = await self._read({name: registry[name]})
        return record

    async def _registry(self) -> dict[str, str]:
        [raw], _ = await self._link.send([("HGETALL", self._registry_key)])
        return {rs.text(name): rs.text(queue) for name, queue in raw.items()}

    async def _read(self, registry: dict[str, str]) -> list[ScheduleRecord]:
        """The records of the schedules ``registry`` names, one script per queue."""
        by_queue: dict[str, list[str]] = {}
        for name, queue in registry.items():
            by_queue.setdefault(queue, []).append(name)
        if not by_queue:
            return []
        scripts = [
            Script("schedule_read", [self._base(queue)], list(names))
            for queue, names in by_queue.items()
        ]
        replies = await self._link.scripts(*scripts)
        rows = [
            dict(zip(SCHEDULE_FIELDS, row, strict=True)) for r in replies for row in json.loads(r)
        ]
        records = [schedule_record(row, _moment) for row in rows]
        return sorted(records, key=lambda r: r.name)


def _carried(old: ScheduleRecord) -> list[Arg]:
    values = [_us(old.next_tick_at), old.next_task_id or "", _us(old.last_run_at)]
    return [item for pair in zip(_CARRIED, values, strict=True) for item in pair]


def _us(moment: datetime | None) -> str:
    return "" if moment is None else str(rs.micros(moment))


def _moment(value: str | bool) -> datetime | None:
    return rs.at(int(value)) if value not in ("", False) else None
