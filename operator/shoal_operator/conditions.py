"""Status conditions (``type/status/reason/message/observedGeneration``), kept pure."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    ok: bool,
    reason: str,
    message: str,
    generation: int | None,
) -> list[dict[str, Any]]:
    """Return ``conditions`` with ``type_`` set; its transition time moves only when its
    status flips, as Kubernetes conventions ask."""
    status = "True" if ok else "False"
    fresh = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": now_iso(),
    }
    result, placed = [], False
    for condition in conditions:
        if condition.get("type") != type_:
            result.append(dict(condition))
            continue
        if condition.get("status") == status:
            fresh["lastTransitionTime"] = condition.get("lastTransitionTime")
        result.append(fresh)  # in place: a reordered list would read as a change
        placed = True
    return result if placed else [*result, fresh]
