"""The scaling policy as a pure function: bounds, one-step scale-up, stabilisation, zero."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal_operator.scaling import Demand, History, decide, deletion_costs
from shoal_operator.spec import Autoscaling

POLICY = Autoscaling(
    min_replicas=0, max_replicas=20, target_per_replica=10, scale_down_window=60, idle_cooldown=120
)


def test_a_burst_reaches_its_target_in_one_step() -> None:
    decision = decide(POLICY, 0, Demand(ready=137, in_flight=0), now=0, history=History())
    assert decision.replicas == 14
    assert "137 ready + 0 in flight at 10 per replica: scale up 0 → 14" in decision.reason


def test_max_replicas_and_max_surge_bound_the_step() -> None:
    assert decide(POLICY, 2, Demand(5000, 0), 0, History()).replicas == 20
    surge = Autoscaling(max_replicas=20, target_per_replica=10, max_surge=3)
    assert decide(surge, 2, Demand(5000, 0), 0, History()).replicas == 5


def test_an_empty_queue_wakes_nobody() -> None:
    assert decide(POLICY, 0, Demand(ready=0, in_flight=0), 0, History()).replicas == 0


def test_scale_down_waits_for_its_window_and_moves_by_its_step() -> None:
    policy = Autoscaling(
        max_replicas=20,
        target_per_replica=10,
        scale_down_window=60,
        scale_down_step=4,
        idle_cooldown=120,
    )
    history = History()
    assert decide(policy, 0, Demand(150, 0), 0, history).replicas == 15
    held = decide(policy, 15, Demand(10, 0), 30, history)
    assert held.replicas == 15 and "holding 15 for the 60s scale-down window" in held.reason
    assert decide(policy, 15, Demand(10, 0), 61, history).replicas == 11  # step of 4
    assert decide(policy, 11, Demand(10, 0), 62, history).replicas == 7
    assert decide(policy, 7, Demand(10, 0), 63, history).replicas == 3
    assert decide(policy, 3, Demand(10, 0), 64, history).replicas == 1


def test_zero_only_after_the_idle_cooldown_with_nothing_in_flight() -> None:
    history = History()
    assert decide(POLICY, 0, Demand(30, 0), 0, history).replicas == 3
    assert decide(POLICY, 3, Demand(0, 4), 100, history).replicas == 1  # four fit in one
    cooling = decide(POLICY, 1, Demand(0, 0), 170, history)
    assert cooling.replicas == 1 and "idle 70s of a 120s cooldown" in cooling.reason
    assert decide(POLICY, 1, Demand(0, 0), 225, history).replicas == 1  # window holds 1
    final = decide(POLICY, 1, Demand(0, 0), 300, history)
    assert final.replicas == 0 and "idle for 200s" in final.reason


def test_a_fresh_operator_waits_a_cooldown_before_zeroing_a_running_pool() -> None:
    assert decide(POLICY, 4, Demand(0, 0), 1000, History()).replicas >= 1


@settings(max_examples=300)
@given(
    minimum=st.integers(0, 5),
    extra=st.integers(0, 30),
    target=st.integers(1, 50),
    current=st.integers(0, 40),
    up=st.integers(0, 30),
    down=st.integers(0, 300),
    steps=st.lists(
        st.tuples(st.integers(0, 2000), st.integers(0, 500), st.integers(1, 30)),
        min_size=1,
        max_size=12,
    ),
)
def test_properties_bounds_running_work_and_stabilisation(
    minimum: int,
    extra: int,
    target: int,
    current: int,
    up: int,
    down: int,
    steps: list[tuple[int, int, int]],
) -> None:
    policy = Autoscaling(
        min_replicas=minimum,
        max_replicas=minimum + extra + 1,
        target_per_replica=target,
        scale_up_window=up,
        scale_down_window=down,
        idle_cooldown=60,
    )
    history, now = History(), 0.0
    for ready, in_flight, gap in steps:
        now += gap
        before = list(history.recommendations)
        decision = decide(policy, current, Demand(ready, in_flight), now, history)
        # Bounds always hold, whatever the pool ran before.
        assert policy.min_replicas <= decision.replicas <= policy.max_replicas
        # A scale-down never goes below what the work in flight needs.
        needed = min(-(-in_flight // target), policy.max_replicas)
        if decision.replicas < current:
            assert decision.replicas >= needed
            # Stabilisation: nor below any recommendation made within the window.
            recent = [r for t, r in before if t >= now - down]
            assert all(decision.replicas >= min(r, current) for r in recent)
        current = decision.replicas


def test_idle_pods_cost_least_to_delete() -> None:
    costs = deletion_costs({"pod-a": 7, "pod-b": 0}, ["pod-a", "pod-b", "pod-c"])
    assert costs == {"pod-a": 7, "pod-b": 0, "pod-c": 0}


def test_work_that_limits_hold_back_is_no_reason_to_scale() -> None:
    """A rate-limited queue of 5,000 tasks lets 10 start now: 2 replicas, not the maximum."""
    decision = decide(POLICY, 1, Demand(ready=5000, in_flight=8, held_back=4990), 0, History())
    assert decision.replicas == 2
    assert "5000 ready (4990 held back by limits) + 8 in flight" in decision.reason
    assert decide(POLICY, 1, Demand(5000, 8, held_back=0), 0, History()).replicas == 20
