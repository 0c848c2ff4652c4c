"""Pre-warming in the scaling policy: a pool at zero woken a lead time before a scheduled task
(a schedule's tick) is due, and back at zero after its cooldown; the lead observed."""

from __future__ import annotations

from shoal_operator.scaling import (
    DEFAULT_LEAD,
    LEAD_MARGIN,
    Demand,
    History,
    decide,
    lead_time,
    observe_ready,
)
from shoal_operator.spec import Autoscaling

POLICY = Autoscaling(
    min_replicas=0,
    max_replicas=5,
    target_per_replica=10,
    scale_down_window=0,
    idle_cooldown=20,
    schedule_lead=15,
)


def test_a_pool_at_zero_wakes_one_lead_time_before_a_scheduled_task() -> None:
    history = History()
    early = decide(POLICY, 0, Demand(0, 0, next_due_in=40), 0, history)
    assert early.replicas == 0
    woken = decide(POLICY, 0, Demand(0, 0, next_due_in=14), 26, history)
    assert woken.replicas == 1
    assert "a scheduled task is due in 14s (15s lead): scale up 0 → 1" in woken.reason


def test_the_woken_pool_returns_to_zero_after_the_cooldown() -> None:
    history = History()
    assert decide(POLICY, 0, Demand(0, 0, next_due_in=10), 0, history).replicas == 1
    assert decide(POLICY, 1, Demand(0, 1, next_due_in=120), 10, history).replicas == 1  # tick
    cooling = decide(POLICY, 1, Demand(0, 0, next_due_in=110), 20, history)
    assert cooling.replicas == 1 and "cooldown" in cooling.reason
    assert decide(POLICY, 1, Demand(0, 0, next_due_in=95), 35, history).replicas == 0


def test_a_scheduled_task_far_off_never_holds_a_pool_up() -> None:
    history = History()
    assert decide(POLICY, 1, Demand(0, 0, next_due_in=3600), 0, history).replicas == 1
    assert decide(POLICY, 1, Demand(0, 0, next_due_in=3570), 30, history).replicas == 0


def test_the_lead_defaults_to_the_pod_start_time_last_observed() -> None:
    policy = Autoscaling(min_replicas=0, target_per_replica=10)
    history = History()
    assert lead_time(policy, history) == DEFAULT_LEAD
    decide(policy, 0, Demand(5, 0), 100.0, history)  # woken from zero at 100
    observe_ready(history, 0, 104.0)
    assert history.pod_start is None
    observe_ready(history, 1, 107.5)  # the first replica ready 7.5 s later
    assert lead_time(policy, history) == 7.5 + LEAD_MARGIN
    observe_ready(history, 2, 120.0)  # later replicas change nothing
    assert lead_time(policy, history) == 7.5 + LEAD_MARGIN
    assert lead_time(POLICY, history) == 15  # a lead given wins


def test_a_pool_woken_for_a_task_stays_up_until_it_is_due_whatever_the_lead_becomes() -> None:
    policy = Autoscaling(
        min_replicas=0, target_per_replica=10, idle_cooldown=5, scale_down_window=0
    )
    history = History()
    assert decide(policy, 0, Demand(0, 0, next_due_in=29), 0, history).replicas == 1
    observe_ready(history, 1, 3.0)  # a quick pod: the lead shrinks to 3 s + the margin
    for now in (10.0, 20.0, 28.0):  # idle, past the cooldown, but the task is not due yet
        held = decide(policy, 1, Demand(0, 0, next_due_in=29 - now), now, history)
        assert held.replicas == 1, held.reason
    assert decide(policy, 1, Demand(0, 1, next_due_in=None), 30, history).replicas == 1
    assert decide(policy, 1, Demand(0, 0, next_due_in=None), 36, history).replicas == 0
