"""The one back-off rule every retry loop uses."""

from __future__ import annotations

import random

import pytest

from shoal.core.backoff import Backoff


def test_doubles_from_the_base_up_to_the_cap_without_jitter() -> None:
    curve = Backoff(base=0.1, cap=1.0, jitter=0)
    assert [curve.delay(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_jitter_only_shortens_and_stays_within_its_fraction() -> None:
    curve = Backoff(base=1.0, cap=8.0, jitter=0.5)
    rng = random.Random(7)
    delays = [curve.delay(3, rng) for _ in range(1000)]
    assert min(delays) >= 2.0
    assert max(delays) <= 4.0
    assert max(delays) - min(delays) > 1.5  # really spread, not one value


def test_a_huge_failure_count_waits_the_cap_instead_of_overflowing() -> None:
    assert Backoff(base=0.1, cap=5.0, jitter=0).delay(10_000) == 5.0


@pytest.mark.parametrize(
    ("base", "cap", "factor", "jitter"),
    [(-1, 1, 2, 0), (0.1, -1, 2, 0), (0.1, 1, 0.5, 0), (0.1, 1, 2, 1.5)],
)
def test_nonsense_curves_are_refused(base: float, cap: float, factor: float, jitter: float) -> None:
    with pytest.raises(ValueError, match=r"back-off|jitter"):
        Backoff(base, cap, factor, jitter)
