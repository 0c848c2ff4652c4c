"""The schedule part of the backend contract: the periodic tasks' state (the rules every
backend applies alike are in :mod:`shoal.backends.shared.schedules`, the design in
``docs/schedules.md``). :class:`~shoal.backends.base.Backend` inherits it.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime

from shoal.core.models import NewTask
from shoal.core.schedule_records import Advance, ScheduleRecord, ScheduleSpec


class SchedulePrimitives(abc.ABC):
    """The schedule primitives of :class:`~shoal.backends.base.Backend`."""

    @abc.abstractmethod
    async def register_schedules(
        self, app: str, schedules: Sequence[ScheduleSpec]
    ) -> list[ScheduleRecord]:
        """Declare ``app``'s current schedules, in one atomic operation; return every
        schedule of ``app``, retired ones too, sorted by name.

        New ones start active with no watermark; known ones keep their watermark, last run
        and pause, and are updated (a retired one comes back active; one another app
        declared becomes this app's). The app's schedules left out are retired: their
        pending tick, when it comes due, materialises no next one.
        """

    @abc.abstractmethod
    async def advance_schedule(
        self,
        name: str,
        *,
        expected: datetime | None,
        tick: NewTask | None,
        tick_at: datetime | None,
        ran: datetime | None = None,
    ) -> Advance:
        """Materialise the next tick of schedule ``name``, atomically with its de-duplication.

        With the schedule active and its watermark equal to ``expected`` (None: no tick
        materialised yet), push ``tick`` (the tick's task, as :meth:`push` would) and move
        the watermark to ``tick_at``, which must be later than ``expected``: ADVANCED.
        Otherwise push nothing: STALE, PAUSED or RETIRED (retired or unknown). ``tick``
        None only records ``ran``. ``ran``, the moment of a tick whose handler starts now,
        becomes the last run if later than it, whatever the outcome but RETIRED.
        """

    @abc.abstractmethod
    async def schedules(self, app: str | None = None) -> list[ScheduleRecord]:
        """Every stored schedule (of ``app`` only, if named), sorted by name."""

    @abc.abstractmethod
    async def pause_schedule(self, name: str, paused: bool) -> ScheduleRecord:
        """Pause or resume an active or paused schedule (a retired one is left as it is);
        return it. Raises :class:`~shoal.core.errors.ScheduleNotFound`."""
