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
    result: list[dict[str, Any]] = []
    replaced = False
    for condition in conditions:
        if condition.get("type") != type_:
            result.append(dict(condition))
            continue
        replaced = True
        changed = condition.get("status") != status
        result.append(
            {
                "type": type_,
                "status": status,
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": now_iso() if changed else condition.get("lastTransitionTime"),
            }
        )
    if not replaced:
        result.append(
            {
                "type": type_,
                "status": status,
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": now_iso(),
            }
        )
    return result


def condition_status(conditions: Sequence[Mapping[str, Any]], type_: str) -> str | None:
    for condition in conditions:
        if condition.get("type") == type_:
            return str(condition.get("status"))
    return None
