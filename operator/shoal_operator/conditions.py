"""Status conditions (``type/status/reason/message/observedGeneration``), kept pure."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from shoal_operator.spec import CrdModel


class Condition(CrdModel):
    """One entry of a status's ``conditions``, as Kubernetes conventions shape it."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    last_transition_time: str | None = Field(default=None, alias="lastTransitionTime")

    @property
    def ok(self) -> bool:
        return self.status == "True"


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def conditions_of(body: Mapping[str, Any]) -> list[Condition]:
    """The conditions in a resource's status as the API server returned it."""
    listed = (body.get("status") or {}).get("conditions") or []
    return [Condition.model_validate(condition) for condition in listed]


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    ok: bool,
    reason: str,
    message: str,
    generation: int | None,
) -> list[Condition]:
    """Return ``conditions`` with ``type_`` set; its transition time moves only when its
    status flips, as Kubernetes conventions ask."""
    status: Literal["True", "False"] = "True" if ok else "False"
    result, placed = [], False
    for condition in conditions:
        if condition.type != type_:
            result.append(condition)
            continue
        kept = condition.last_transition_time if condition.status == status else now_iso()
        result.append(_condition(type_, status, reason, message, generation, kept))
        placed = True  # in place: a reordered list would read as a change
    if not placed:
        result.append(_condition(type_, status, reason, message, generation, now_iso()))
    return result


def _condition(
    type_: str,
    status: Literal["True", "False"],
    reason: str,
    message: str,
    generation: int | None,
    since: str | None,
) -> Condition:
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        observedGeneration=generation,
        lastTransitionTime=since,
    )
