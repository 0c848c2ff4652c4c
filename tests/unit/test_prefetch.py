"""How far ahead a worker claims: the pure rule of shoal.worker.prefetch."""

from __future__ import annotations

import pytest

from shoal.worker.prefetch import HORIZON, MOST_PER_SLOT, claim_ahead, updated_run_time


def test_a_setting_is_used_as_given() -> None:
    assert claim_ahead(8, 0, 0.0001) == 0
    assert claim_ahead(8, 50, 60.0) == 50


def test_nothing_is_claimed_ahead_before_any_task_has_run() -> None:
    assert claim_ahead(8, None, None) == 0


@pytest.mark.parametrize(
    ("run_time", "expected"),
    [
        (0.0, 8 * MOST_PER_SLOT),  # no-ops: the cap
        (0.0001, 8 * MOST_PER_SLOT),
        (HORIZON / 4, 8 * 4),  # four such tasks per slot fit in the horizon
        (HORIZON, 8),
        (HORIZON * 2, 4),
        (1.0, 0),  # slow tasks: none held back from other workers
    ],
)
def test_automatic_holds_at_most_the_horizon_of_work(run_time: float, expected: int) -> None:
    assert claim_ahead(8, None, run_time) == expected


def test_the_typical_run_time_follows_recent_tasks() -> None:
    typical = updated_run_time(None, 2.0)
    assert typical == 2.0
    for _ in range(100):
        typical = updated_run_time(typical, 0.001)
    assert typical == pytest.approx(0.001, abs=0.02)
    assert claim_ahead(8, None, typical) > 0  # slow tasks gave way to quick ones
