"""Each recurring backend call of a worker keeps its own pace (pure logic)."""

from __future__ import annotations

from shoal.worker.execution import describe_error
from shoal.worker.pacing import heartbeat_pace, on_demand_pace, reap_pace


def test_a_failing_heartbeat_is_retried_within_a_quarter_of_its_interval() -> None:
    pace = heartbeat_pace(1.0)
    assert pace.is_due(0.0)
    for failures in range(1, 30):  # however long the outage
        assert 0 <= pace.failed(100.0) <= 0.25
        assert pace.failures == failures
    pace.succeeded(200.0)
    assert (pace.failures, pace.due) == (0, 201.0)
    assert heartbeat_pace(30.0).backoff.cap == 0.5  # long leases: still within half a second


def test_claims_back_off_alone_and_reaps_spread_out() -> None:
    claims, heartbeats = on_demand_pace(), heartbeat_pace(1.0)
    delays = [claims.failed(0.0) for _ in range(10)]
    assert delays[-1] > 1.0 and heartbeats.is_due(0.0)  # a claim's back-off is its own
    claims.succeeded(5.0)
    assert claims.is_due(5.0) and not claims.backing_off
    reaps = reap_pace(5.0)
    reaps.succeeded(0.0)
    assert 4.0 <= reaps.due <= 6.0


def test_failures_are_worth_a_log_line_ever_more_rarely() -> None:
    pace = on_demand_pace()
    logged = []
    for failures in range(1, 20):
        pace.failed(0.0)
        if pace.worth_logging:
            logged.append(failures)
    assert logged == [1, 2, 4, 8, 16]


def test_describing_an_error_never_fails() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    class Unreadable(Unprintable):
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert describe_error(ValueError("bad")) == "ValueError: bad"
    assert describe_error(TimeoutError()).startswith("TimeoutError: the attempt took longer")
    assert describe_error(Unprintable()).startswith("Unprintable: (its message could not be read)")
    assert describe_error(Unreadable()) == "Unreadable: (its message could not be read)"
