"""The retry policy's decisions, as pure functions."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.core.errors import PermanentFailure, Retry
from shoal.core.retry import RetryPolicy


@given(
    attempt=st.integers(1, 40),
    base=st.floats(0.01, 10),
    cap=st.floats(0.01, 600),
    jitter=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_backoff_stays_within_its_bounds(
    attempt: int, base: float, cap: float, jitter: float, seed: int
) -> None:
    policy = RetryPolicy(base_delay=base, max_delay=cap, jitter=jitter)
    delay = policy.backoff(attempt, random.Random(seed))
    ceiling = min(cap, base * 2 ** (attempt - 1))
    assert ceiling * (1 - jitter) - 1e-9 <= delay <= ceiling + 1e-9


def test_backoff_grows_exponentially_without_jitter() -> None:
    policy = RetryPolicy(base_delay=1, multiplier=3, max_delay=100, jitter=0)
    assert [policy.backoff(n) for n in range(1, 6)] == [1, 3, 9, 27, 81]
    assert policy.backoff(10) == 100


def test_next_delay_decides_retry_or_dead() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=2, jitter=0, never_retry=(KeyError,))
    assert policy.next_delay(ValueError("x"), attempt=1, max_attempts=3) == 2
    assert policy.next_delay(ValueError("x"), attempt=3, max_attempts=3) is None
    assert policy.next_delay(KeyError("x"), attempt=1, max_attempts=3) is None
    assert policy.next_delay(PermanentFailure("no"), attempt=1, max_attempts=3) is None
    assert policy.next_delay(Retry(delay=7.5), attempt=1, max_attempts=3) == 7.5
    assert policy.next_delay(Retry(delay=7.5), attempt=3, max_attempts=3) is None


@pytest.mark.parametrize("bad", [{"max_attempts": 0}, {"jitter": 1.5}])
def test_policy_rejects_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        RetryPolicy(**bad)  # type: ignore[arg-type]
