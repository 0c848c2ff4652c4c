"""The leader election's rules, pure: who may take the Lease when, what a write contains, and
that a leader's term always ends before a standby's begins (a property over random timings of
renewals, their latency and the standby's looks)."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.core.errors import ConfigurationError
from shoal_operator.election import LeaseRecord, Observation, Term, Timing, claimed, released

TIMING = Timing(lease_duration=10)
NOW = datetime.datetime(2026, 12, 2, 3, 30, 0, 123456, tzinfo=datetime.UTC)


def record(holder: str, version: str, transitions: int = 0) -> LeaseRecord:
    return LeaseRecord(holder, 10, transitions, version, acquired="2026-12-02T03:00:00.000000Z")


def test_the_timing_leaves_a_margin_and_five_renewals_per_deadline() -> None:
    assert TIMING.renew_deadline == 7
    assert TIMING.retry_period == 1.25
    assert TIMING.lease_duration - TIMING.renew_deadline > 2 * TIMING.retry_period
    assert TIMING.renew_deadline // TIMING.retry_period == 5
    with pytest.raises(ConfigurationError, match="at least 2 seconds"):
        Timing(lease_duration=1)


def test_a_lease_nobody_holds_or_that_is_ours_may_be_taken_at_once() -> None:
    seen = Observation()
    assert seen.may_take("b", now=0)  # no Lease yet
    seen.see(record("", "7"), now=0)
    assert seen.may_take("b", now=0)  # released
    seen.see(record("b_1", "8"), now=1)
    assert seen.may_take("b_1", now=1)


def test_a_held_lease_is_taken_only_after_a_whole_duration_unchanged() -> None:
    seen = Observation()
    seen.see(record("a", "1"), now=100)
    assert not seen.may_take("b", now=109.9)
    seen.see(record("a", "1"), now=109.9)  # the same version again: still counting
    assert seen.may_take("b", now=110)
    seen.see(record("a", "2"), now=110)  # renewed: the count starts again
    assert not seen.may_take("b", now=119)
    assert seen.may_take("b", now=120)


def test_a_term_runs_from_the_moment_the_renewal_was_sent() -> None:
    term = Term(TIMING)
    assert not term.holds(0)
    term.renewed(sent_at=5)
    assert term.holds(11.9) and not term.holds(12)
    term.renewed(sent_at=3)  # a late answer to an older try never shortens the term
    assert term.holds(11.9)
    term.end()
    assert not term.holds(6)


def test_a_take_over_counts_a_transition_and_a_renewal_keeps_the_acquire_time() -> None:
    first = claimed(None, "a_1", TIMING, NOW)
    assert first == {
        "holderIdentity": "a_1",
        "leaseDurationSeconds": 10,
        "acquireTime": "2026-12-02T03:30:00.123456Z",
        "renewTime": "2026-12-02T03:30:00.123456Z",
        "leaseTransitions": 0,
    }
    renewal = claimed(record("a_1", "3", transitions=2), "a_1", TIMING, NOW)
    assert renewal["acquireTime"] == "2026-12-02T03:00:00.000000Z"
    assert renewal["leaseTransitions"] == 2
    take_over = claimed(record("a_1", "3", transitions=2), "b_2", TIMING, NOW)
    assert take_over["acquireTime"] == take_over["renewTime"]
    assert take_over["leaseTransitions"] == 3


def test_a_released_lease_has_no_holder_and_keeps_its_count() -> None:
    spec = released(record("a_1", "4", transitions=5))
    assert spec["holderIdentity"] is None
    assert spec["leaseTransitions"] == 5
    assert LeaseRecord.of({"metadata": {"resourceVersion": "9"}, "spec": spec}).holder == ""


@settings(max_examples=300, deadline=None)
@given(
    renew_gaps=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=20),
    latencies=st.lists(st.floats(0.0, 2.0), min_size=20, max_size=20),
    look_gaps=st.lists(st.floats(0.01, 2.0), min_size=1, max_size=50),
)
def test_a_leaders_term_ends_before_a_standby_takes_over_and_it_does(
    renew_gaps: list[float], latencies: list[float], look_gaps: list[float]
) -> None:
    """The leader renews (each renewal sent, then committed after some latency) and then
    dies or is cut off; the standby looks at its own pace. When it first may take the
    Lease, the leader's term is over with the margin for a write in flight to spare, and
    that happens within a lease duration (and a look) of the last renewal."""
    term = Term(TIMING)
    commits: list[float] = []
    sent = 0.0
    for gap, latency in zip(renew_gaps, latencies, strict=False):
        sent += gap
        term.renewed(sent)
        commits.append(sent + latency)  # the standby can see it from then on
    seen = Observation()
    now, look = 0.0, 0
    while now < max(commits) + 3 * TIMING.lease_duration:
        now += look_gaps[look % len(look_gaps)]
        look += 1
        visible = [c for c in commits if c <= now]
        seen.see(record("leader", str(len(visible))) if visible else None, now)
        if visible and seen.may_take("standby", now):
            assert term.valid_until <= now - (TIMING.lease_duration - TIMING.renew_deadline)
            assert now <= max(commits) + TIMING.lease_duration + 2 * max(look_gaps)
            return
    raise AssertionError("the standby never took over")
