"""The pure tick logic (shoal.core.schedules): cadences, DST, and the missed-tick policies.

DST matrix: a daily 02:30 (a time that does not exist on the spring-forward day and, in
Europe, exists twice on the fall-back day) and a daily 01:30 (twice on New York's fall-back
day), in Europe/Berlin and America/New_York, over a week around each change: exactly one
tick per calendar day.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shoal.core.errors import ConfigurationError
from shoal.core.schedules import (
    COUNT_CAP,
    Cron,
    Every,
    Missed,
    Timing,
    due_at,
    plan,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def ticks(cadence: Cron | Every, start: datetime, end: datetime) -> list[datetime]:
    found, moment = [], cadence.after(start)
    while moment < end:
        found.append(moment)
        moment = cadence.after(moment)
    return found


# -- DST ------------------------------------------------------------------------------------

DST_DAYS = [
    ("Europe/Berlin", date(2026, 3, 29)),  # spring forward: 02:00 -> 03:00
    ("Europe/Berlin", date(2026, 10, 25)),  # fall back: 03:00 -> 02:00, 02:30 twice
    ("America/New_York", date(2026, 3, 8)),  # spring forward: 02:00 -> 03:00
    ("America/New_York", date(2026, 11, 1)),  # fall back: 02:00 -> 01:00, 01:30 twice
]


@pytest.mark.parametrize(("tz", "day"), DST_DAYS)
@pytest.mark.parametrize("clock", ["30 2 * * *", "30 1 * * *"])
def test_a_daily_schedule_runs_exactly_once_on_each_day_around_a_dst_change(
    tz: str, day: date, clock: str
) -> None:
    zone = ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=zone) - timedelta(days=3)
    found = ticks(Cron(clock, tz), start, start + timedelta(days=7))
    local_days = [t.astimezone(zone).date() for t in found]
    assert local_days == [start.date() + timedelta(days=n) for n in range(7)]


@pytest.mark.parametrize(("tz", "day"), [DST_DAYS[0], DST_DAYS[2]])
def test_a_time_skipped_by_spring_forward_runs_at_the_first_moment_after_the_gap(
    tz: str, day: date
) -> None:
    zone = ZoneInfo(tz)
    [tick] = ticks(
        Cron("30 2 * * *", tz),
        datetime(day.year, day.month, day.day, tzinfo=zone),
        datetime(day.year, day.month, day.day, 23, tzinfo=zone),
    )
    assert (tick.astimezone(zone).hour, tick.astimezone(zone).minute) == (3, 0)


def test_a_repeated_hour_at_fall_back_runs_its_first_occurrence_only() -> None:
    zone = ZoneInfo("America/New_York")
    [tick] = ticks(
        Cron("30 1 * * *", "America/New_York"),
        datetime(2026, 11, 1, tzinfo=zone),
        datetime(2026, 11, 1, 23, tzinfo=zone),
    )
    assert tick == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT, not 01:30 EST


def test_an_hourly_schedule_runs_every_real_hour_across_fall_back() -> None:
    zone = ZoneInfo("Europe/Berlin")
    day = datetime(2026, 10, 25, tzinfo=zone)
    found = ticks(
        Cron("@hourly", "Europe/Berlin"), day - timedelta(seconds=1), day + timedelta(days=1)
    )
    assert len(found) == 25  # midnight to midnight on the fall-back day: 25 real hours
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(found))


def test_at_or_before_is_the_reverse_of_after_across_dst() -> None:
    cron = Cron("30 2 * * *", "Europe/Berlin")
    moment = datetime(2026, 3, 20, tzinfo=UTC)
    for _ in range(30):
        tick = cron.after(moment)
        assert cron.at_or_before(tick) == tick
        assert cron.at_or_before(tick - timedelta(seconds=1)) < tick
        moment = tick


# -- cadences -------------------------------------------------------------------------------


def test_aliases_seconds_and_whitespace() -> None:
    assert Cron("@hourly").after(T0) == T0 + timedelta(hours=1)
    assert Cron("@DAILY").after(T0) == datetime(2026, 6, 2, tzinfo=UTC)
    assert Cron("*/15 * * * * *").after(T0) == T0 + timedelta(seconds=15)
    assert Cron("  */5   * * * * ").after(T0 + timedelta(seconds=1)) == T0 + timedelta(minutes=5)


def test_ticks_are_strictly_after_and_at_or_before_includes_the_moment() -> None:
    cron = Cron("0 * * * *")
    assert cron.after(T0) == T0 + timedelta(hours=1)
    assert cron.at_or_before(T0) == T0
    assert cron.at_or_before(T0 + timedelta(microseconds=10)) == T0
    every = Every(timedelta(seconds=7))
    assert (every.after(T0) - datetime(1970, 1, 1, tzinfo=UTC)) % timedelta(seconds=7) == (
        timedelta(0)
    )
    assert every.at_or_before(every.after(T0)) == every.after(T0)
    assert every.after(every.after(T0)) - every.after(T0) == timedelta(seconds=7)


def test_a_cron_timezone_moves_its_ticks() -> None:
    assert Cron("0 9 * * *", "Europe/Paris").after(T0) == datetime(2026, 6, 2, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: Cron("61 * * * *"), "bad cron expression '61 * * * *'"),
        (lambda: Cron("* * *"), "five fields"),
        (lambda: Cron("@fortnightly"), "@hourly"),
        (lambda: Cron("0 * * * *", "Mars/Olympus"), "unknown timezone 'Mars/Olympus'"),
        (lambda: Every(timedelta(milliseconds=1500)), "whole number of seconds"),
        (lambda: Every(timedelta(0)), "at least one"),
        (lambda: Timing(Every(timedelta(seconds=1)), catch_up=0), "catch_up"),
        (lambda: Timing(Every(timedelta(seconds=1)), grace=timedelta(-1)), "negative"),
    ],
)
def test_bad_declarations_raise_a_configuration_error_that_says_what_to_write(
    build: object, words: str
) -> None:
    with pytest.raises(ConfigurationError, match=words.replace("*", r"\*")):
        build()  # type: ignore[operator]


# -- jitter ---------------------------------------------------------------------------------


def test_jitter_is_the_same_in_every_process_and_within_its_bound() -> None:
    jitter = timedelta(seconds=30)
    dues = [due_at("s", T0 + timedelta(minutes=m), jitter) for m in range(200)]
    assert dues == [due_at("s", T0 + timedelta(minutes=m), jitter) for m in range(200)]
    offsets = [d - (T0 + timedelta(minutes=m)) for m, d in enumerate(dues)]
    assert all(timedelta(0) <= o < jitter for o in offsets)
    assert len(set(offsets)) > 150  # spread, not constant
    assert due_at("other", T0, jitter) != due_at("s", T0, jitter)
    assert due_at("s", T0, timedelta(0)) == T0


# -- missed ticks ---------------------------------------------------------------------------

SECONDLY = Every(timedelta(seconds=10))


def timing(missed: Missed, **kw: object) -> Timing:
    return Timing(SECONDLY, missed=missed, grace=timedelta(seconds=5), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("missed", list(Missed))
def test_a_tick_within_its_grace_runs_and_names_the_next_tick_whatever_the_policy(
    missed: Missed,
) -> None:
    for late in (0.0, 2.0, 5.0):
        decided = plan(timing(missed), T0, T0, T0 + timedelta(seconds=late))
        assert (decided.run, decided.next_tick, decided.skipped) == (
            True,
            T0 + timedelta(seconds=10),
            0,
        )
        assert decided.late is False


def test_skip_runs_none_of_the_missed_ticks_and_waits_for_the_next_one() -> None:
    now = T0 + timedelta(seconds=305)  # ticks T0, +10 .. +300 came due: 31 of them
    decided = plan(timing(Missed.SKIP), T0, T0, now)
    assert decided.run is False
    assert decided.next_tick == T0 + timedelta(seconds=310)
    assert decided.skipped == 31
    assert decided.late is True


def test_latest_skips_all_but_the_newest_missed_tick_which_comes_next() -> None:
    now = T0 + timedelta(seconds=305)
    decided = plan(timing(Missed.LATEST), T0, T0, now)
    assert (decided.run, decided.next_tick, decided.skipped) == (
        False,
        T0 + timedelta(seconds=300),
        30,
    )
    # ... and that newest tick, now within its grace, runs.
    then = plan(timing(Missed.LATEST), decided.next_tick, decided.next_tick, now)
    assert then.run is True
    assert then.next_tick == T0 + timedelta(seconds=310)


def test_latest_runs_a_late_tick_that_is_still_the_newest() -> None:
    decided = plan(timing(Missed.LATEST), T0, T0, T0 + timedelta(seconds=9))
    assert (decided.run, decided.late, decided.next_tick) == (
        True,
        True,
        T0 + timedelta(seconds=10),
    )


def test_all_runs_each_missed_tick_up_to_the_bound_the_newest_ones() -> None:
    now = T0 + timedelta(seconds=305)
    rules = timing(Missed.ALL, catch_up=4)
    decided = plan(rules, T0, T0, now)
    assert (decided.run, decided.next_tick, decided.skipped) == (
        False,
        T0 + timedelta(seconds=270),
        27,
    )
    ran, tick = [], decided.next_tick
    while tick <= now:
        step = plan(rules, tick, tick, now)
        assert step.run is True
        ran.append(tick)
        tick = step.next_tick
    assert ran == [T0 + timedelta(seconds=s) for s in (270, 280, 290, 300)]


def test_all_runs_every_missed_tick_when_fewer_than_the_bound() -> None:
    decided = plan(timing(Missed.ALL, catch_up=50), T0, T0, T0 + timedelta(seconds=305))
    assert (decided.run, decided.next_tick) == (True, T0 + timedelta(seconds=10))


def test_lateness_counts_from_the_jittered_due_time() -> None:
    due = T0 + timedelta(seconds=8)
    assert plan(timing(Missed.SKIP), T0, due, T0 + timedelta(seconds=12)).run is True
    assert plan(timing(Missed.SKIP), T0, T0, T0 + timedelta(seconds=12)).run is False


def test_counting_skipped_ticks_stops_at_the_cap() -> None:
    rules = Timing(Every(timedelta(seconds=1)), missed=Missed.SKIP)
    decided = plan(rules, T0, T0, T0 + timedelta(days=30))
    assert decided.skipped == COUNT_CAP
    assert decided.next_tick == T0 + timedelta(days=30, seconds=1)


def test_a_cron_schedule_down_over_a_dst_change_catches_up_by_its_policy() -> None:
    cron = Cron("30 2 * * *", "Europe/Berlin")
    first = cron.after(datetime(2026, 3, 27, tzinfo=UTC))
    now = datetime(2026, 3, 31, 12, tzinfo=UTC)  # the 27th .. 31st came due: 5 ticks
    latest = plan(Timing(cron), first, first, now)
    assert latest.next_tick == cron.at_or_before(now)
    assert latest.skipped == 4
    both = plan(Timing(cron, missed=Missed.ALL, catch_up=2), first, first, now)
    assert both.next_tick == cron.at_or_before(cron.at_or_before(now) - timedelta(seconds=1))
