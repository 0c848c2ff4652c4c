"""What a task's page shows beyond its fields: the actions its state allows, and the
result it kept, readable."""

from __future__ import annotations

from shoal.backends.base import PURGEABLE, RETRYABLE
from shoal.board.api import payload_text
from shoal.core.models import FINISHED, Task, TaskResult


def allowed_actions(task: Task) -> tuple[str, ...]:
    """The actions offered for ``task``: only those its state allows (the backend refuses
    the others anyway; offering them would only lead to a refusal)."""
    actions = []
    if task.status in RETRYABLE:
        actions.append("retry")
    if task.status not in FINISHED and task.cancelled_by is None:
        actions.append("cancel")
    if task.status in PURGEABLE:
        actions.append("purge")
    return tuple(actions)


def kept_value(result: TaskResult | None) -> tuple[str, str] | None:
    """The kept return value as shown and how (as a payload is), or None without one."""
    if result is None or result.value is None:
        return None
    return payload_text(result.value)
