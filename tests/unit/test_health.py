"""The worker's health verdict: liveness by heartbeats begun, readiness by heartbeats that
succeeded and a backend that answered. Pure: fixed clocks, no server."""

from __future__ import annotations

from shoal.core.models import BackendHealth
from shoal.worker.health import HealthState, Progress, judge


def test_a_starting_worker_is_live_but_not_ready() -> None:
    verdict = judge(HealthState(stale_after=30.0, started=0.0), now=50.0)
    assert verdict.live and not verdict.ready
    assert verdict.body["status"] == "starting"


def test_recent_heartbeats_and_a_healthy_backend_are_ready() -> None:
    state = HealthState(30.0, [Progress(began=95.0, succeeded=95.1)], BackendHealth(), 0.0)
    verdict = judge(state, now=100.0)
    assert verdict.live and verdict.ready
    assert verdict.body["heartbeat_began_ago"] == [5.0]


def test_failing_heartbeats_keep_a_worker_live_but_not_ready() -> None:
    # The loop goes on trying (a backend outage): a restart would not help.
    state = HealthState(30.0, [Progress(began=99.0, succeeded=40.0)], BackendHealth(), 0.0)
    verdict = judge(state, now=100.0)
    assert verdict.live and not verdict.ready


def test_a_loop_that_stops_beginning_heartbeats_is_not_live() -> None:
    stuck = Progress(began=60.0, succeeded=60.0)
    state = HealthState(30.0, [Progress(began=99.0, succeeded=99.0), stuck], BackendHealth())
    verdict = judge(state, now=100.0)
    assert not verdict.live and not verdict.ready
    assert verdict.body["status"] == "stalled"


def test_a_backend_that_fails_its_health_check_is_not_ready() -> None:
    state = HealthState(30.0, [Progress(began=99.0, succeeded=99.0)], "cannot reach Redis")
    verdict = judge(state, now=100.0)
    assert verdict.live and not verdict.ready
    assert verdict.body["backend"] == {"status": "failing", "error": "cannot reach Redis"}


def test_a_degraded_backend_is_still_ready_and_says_why() -> None:
    warned = BackendHealth({"persistence": "none"}, ("no persistence",), durable=False)
    verdict = judge(HealthState(30.0, [Progress(99.0, 99.0)], warned), now=100.0)
    assert verdict.ready
    assert verdict.body["backend"] == {
        "status": "degraded",
        "details": {"persistence": "none"},
        "warnings": ["no persistence"],
    }
