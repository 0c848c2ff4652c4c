"""Conditions keep their transition time until their status flips."""

from __future__ import annotations

from shoal_operator.conditions import conditions_of, set_condition


def test_transition_time_moves_only_on_a_flip() -> None:
    [first] = set_condition([], "Ready", True, "Reconciled", "ok", 1)
    first = first.model_copy(update={"last_transition_time": "2026-01-01T00:00:00Z"})
    [same] = set_condition([first], "Ready", True, "Reconciled", "still ok", 2)
    assert same.last_transition_time == "2026-01-01T00:00:00Z"
    assert same.message == "still ok" and same.observed_generation == 2 and same.ok
    flipped = set_condition([same], "Ready", False, "SecretMissing", "create it", 2)
    assert flipped[0].last_transition_time != "2026-01-01T00:00:00Z"
    both = set_condition(flipped, "ScalingActive", True, "DepthRead", "fine", 2)
    again = set_condition(both, "Ready", False, "SecretMissing", "create it", 2)
    assert [c.type for c in again] == ["Ready", "ScalingActive"]  # order kept
    assert again == both


def test_conditions_are_read_back_from_a_status_by_their_crd_names() -> None:
    body = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False", "observedGeneration": 3, "reason": "X"}
            ]
        }
    }
    [ready] = conditions_of(body)
    assert (ready.type, ready.ok, ready.observed_generation) == ("Ready", False, 3)
    assert ready.model_dump(by_alias=True, exclude_unset=True) == body["status"]["conditions"][0]
    assert conditions_of({}) == []
