"""Results every backend describes alike: a finished task's outcome read from the task.

A backend keeps a result apart from its task (its own table or key) only when asked to
(``keep_result``); every other finished task still has an outcome a waiter must hear of (it
was cancelled, or it died), and this is how a backend describes it.
"""

from __future__ import annotations

from shoal.core.models import FINISHED, Task, TaskResult, TaskStatus


def outcome_of(task: Task) -> TaskResult | None:
    """How ``task`` ended, without a kept value; None while it is unfinished."""
    if task.status not in FINISHED:
        return None
    failed = task.status is TaskStatus.DEAD
    return TaskResult(
        task.id,
        task.status,
        error=task.last_error if failed else None,
        traceback=task.last_traceback if failed else None,
        cancelled_by=task.cancelled_by if task.status is TaskStatus.CANCELLED else None,
    )
