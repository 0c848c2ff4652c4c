"""When a schedule's ticks fall, and what a late tick does. Pure: no I/O, no clock.

A *tick* is one moment a schedule names (a cron match, or a multiple of an interval); it is
identified by that moment, in UTC, whatever the timezone the schedule is written in. A
worker that runs a tick asks :func:`plan` what to do: run it or not, and which tick comes
next. Every worker that asks about the same tick at about the same time gets the same
answer, which is what lets the backend de-duplicate ticks by their moment.

Cron expressions are evaluated by cronsim in the schedule's IANA timezone (zoneinfo), which
handles daylight saving time as Debian's cron does: a daily 02:30 runs once on the
spring-forward day (at 03:00, the first moment after the gap) and once on the fall-back day
(the first 02:30); an hourly schedule still runs every real hour.
"""

from __future__ import annotations

import abc
import enum
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from shoal.core.errors import ConfigurationError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""The cron aliases Vixie cron knows (cronsim itself takes only fields)."""

COUNT_CAP = 10_000
"""Most ticks :func:`plan` counts as skipped: a minutely schedule down for a year is reported
as 10,000 skipped rather than spending seconds counting half a million."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


class Missed(enum.StrEnum):
    """What a schedule does with ticks that came due while no worker ran them."""

    SKIP = "skip"
    """Run none of them: wait for the next tick after now."""
    LATEST = "latest"
    """Run the latest one once, now, and none of the older ones (the default)."""
    ALL = "all"
    """Run each of them in turn, up to the schedule's ``catch_up`` bound (the newest)."""


class Cadence(abc.ABC):
    """Where ticks fall. Ticks are whole seconds, returned in UTC."""

    @abc.abstractmethod
    def after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment``."""

    @abc.abstractmethod
    def at_or_before(self, moment: datetime) -> datetime:
        """The last tick at or before ``moment``."""

    @abc.abstractmethod
    def describe(self) -> str:
        """The cadence as a person wrote it, e.g. ``cron 30 2 * * * Europe/Berlin``."""


@dataclass(frozen=True, slots=True)
class Cron(Cadence):
    """A cron expression: five fields, or six with seconds first, or an alias (``@hourly``),
    evaluated in ``tz`` (an IANA name, default UTC)."""

    expression: str
    tz: str = "UTC"

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigurationError(
                f"unknown timezone {self.tz!r}: give an IANA name such as 'Europe/Paris'"
            ) from exc
        try:
            CronSim(self.fields, datetime.now(zone))
        except CronSimError as exc:
            raise ConfigurationError(
                f"bad cron expression {self.expression!r}: {exc} (five fields "
                "'minute hour day month weekday', six with seconds first, or an alias "
                f"such as {', '.join(sorted(ALIASES))})"
            ) from exc

    @property
    def fields(self) -> str:
        text = " ".join(self.expression.split())
        return ALIASES.get(text.lower(), text)

    def after(self, moment: datetime) -> datetime:
        local = moment.astimezone(ZoneInfo(self.tz))
        return next(CronSim(self.fields, local)).astimezone(UTC)

    def at_or_before(self, moment: datetime) -> datetime:
        # cronsim's reverse iteration starts strictly before its start unless the start has
        # microseconds, which it strips and counts: so start a microsecond past the second.
        local = moment.astimezone(ZoneInfo(self.tz)).replace(microsecond=1)
        return next(CronSim(self.fields, local, reverse=True)).astimezone(UTC)

    def describe(self) -> str:
        return f"cron {self.expression} {self.tz}"


@dataclass(frozen=True, slots=True)
class Every(Cadence):
    """A fixed interval of whole seconds, aligned on the Unix epoch so that every process
    names the same ticks (``every=timedelta(minutes=5)`` ticks at :00, :05, ... UTC)."""

    interval: timedelta

    def __post_init__(self) -> None:
        if self.interval < _SECOND or self.interval % _SECOND:
            raise ConfigurationError(
                f"every={self.interval!r} must be a whole number of seconds, at least one"
            )

    def after(self, moment: datetime) -> datetime:
        return self.at_or_before(moment) + self.interval

    def at_or_before(self, moment: datetime) -> datetime:
        return _EPOCH + ((moment - _EPOCH) // self.interval) * self.interval

    def describe(self) -> str:
        return f"every {self.interval.total_seconds():g}s"


@dataclass(frozen=True, slots=True)
class Timing:
    """Everything that decides when a schedule's ticks run."""

    cadence: Cadence
    missed: Missed = Missed.LATEST
    catch_up: int = 10
    """With ``Missed.ALL``: at most this many missed ticks run, the newest ones."""
    grace: timedelta = timedelta(seconds=30)
    """A tick that starts later than this after it was due counts as missed, and the missed
    policy applies. Anything shorter counts as merely late: it runs."""
    jitter: timedelta = timedelta(0)
    """Each tick is due up to this much after its moment, the same amount for every process
    (derived from the schedule and the tick), to spread schedules that share a moment."""

    def __post_init__(self) -> None:
        if self.catch_up < 1:
            raise ConfigurationError("catch_up must be at least 1")
        if self.grace < timedelta(0) or self.jitter < timedelta(0):
            raise ConfigurationError("grace and jitter cannot be negative")


@dataclass(frozen=True, slots=True)
class TickPlan:
    """What to do with one tick a worker holds."""

    run: bool
    """Whether its handler runs (False: the missed policy skips it)."""
    next_tick: datetime
    """The tick to materialise next."""
    skipped: int
    """How many ticks this decision skips (this one included when it does not run), at
    most :data:`COUNT_CAP`."""
    late: bool
    """Whether it started after its grace."""


def due_at(schedule: str, tick: datetime, jitter: timedelta) -> datetime:
    """When ``tick`` of ``schedule`` should run: its moment plus its share of the jitter,
    the same in every process (a hash, not a random draw)."""
    if not jitter:
        return tick
    digest = hashlib.blake2b(f"{schedule}\0{tick.isoformat()}".encode(), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    return tick + timedelta(microseconds=int(jitter / timedelta(microseconds=1) * fraction))


def plan(timing: Timing, tick: datetime, due: datetime, now: datetime) -> TickPlan:
    """Decide what a worker does with ``tick`` (due at ``due``), starting it at ``now``."""
    cadence = timing.cadence
    if now - due <= timing.grace:
        return TickPlan(run=True, next_tick=cadence.after(tick), skipped=0, late=False)
    latest = cadence.at_or_before(now)
    if timing.missed is Missed.SKIP:
        return TickPlan(False, cadence.after(now), _count(cadence, tick, now), late=True)
    if timing.missed is Missed.LATEST:
        if latest <= tick:
            return TickPlan(run=True, next_tick=cadence.after(tick), skipped=0, late=True)
        return TickPlan(False, latest, _count(cadence, tick, latest - _SECOND), late=True)
    oldest = _newest_first(cadence, tick, now, timing.catch_up)
    if oldest <= tick:
        return TickPlan(run=True, next_tick=cadence.after(tick), skipped=0, late=True)
    return TickPlan(False, oldest, _count(cadence, tick, oldest - _SECOND), late=True)


def _count(cadence: Cadence, first: datetime, last: datetime) -> int:
    """How many ticks fall in ``[first, last]`` (``first`` being one), up to the cap."""
    count, moment = 0, first
    while moment <= last and count < COUNT_CAP:
        count += 1
        moment = cadence.after(moment)
    return count


def _newest_first(cadence: Cadence, floor: datetime, now: datetime, n: int) -> datetime:
    """The oldest of the ``n`` newest ticks in ``[floor, now]`` (``floor`` if fewer)."""
    moment = cadence.at_or_before(now)
    for _ in range(n - 1):
        if moment <= floor:
            return floor
        moment = cadence.at_or_before(moment - _SECOND)
    return max(moment, floor)
