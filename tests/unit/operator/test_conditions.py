"""Conditions keep their transition time until their status flips."""

from __future__ import annotations

from shoal_operator.conditions import set_condition


def test_transition_time_moves_only_on_a_flip() -> None:
    first = set_condition([], "Ready", True, "Reconciled", "ok", 1)
    first[0]["lastTransitionTime"] = "2026-01-01T00:00:00Z"
    same = set_condition(first, "Ready", True, "Reconciled", "still ok", 2)
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert same[0]["message"] == "still ok" and same[0]["observedGeneration"] == 2
    flipped = set_condition(same, "Ready", False, "SecretMissing", "create it", 2)
    assert flipped[0]["lastTransitionTime"] != "2026-01-01T00:00:00Z"
    both = set_condition(flipped, "ScalingActive", True, "DepthRead", "fine", 2)
    again = set_condition(both, "Ready", False, "SecretMissing", "create it", 2)
    assert [c["type"] for c in again] == ["Ready", "ScalingActive"]  # order kept
    assert again == both
