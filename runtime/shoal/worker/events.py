"""Task events as log lines: one per transition, at a level that says how much it matters."""

from __future__ import annotations

import logging

from shoal.app import EventName
from shoal.core.models import Task
from shoal.worker.execution import describe_error

logger = logging.getLogger("shoal.worker")

LEVELS: dict[EventName, int] = {
    "task_started": logging.DEBUG,
    "task_succeeded": logging.INFO,
    "task_retrying": logging.WARNING,
    "task_dead": logging.ERROR,
    "task_released": logging.WARNING,
    "task_discarded": logging.WARNING,
    "task_cancelled": logging.WARNING,
}


def log_event(
    name: EventName,
    worker_id: str,
    task: Task,
    duration: float | None = None,
    error: BaseException | None = None,
    traceback: str | None = None,
) -> None:
    """One line about a task; a failed attempt's carries its (bounded) traceback."""
    extra: dict[str, object] = {
        "task_id": task.id,
        "queue": task.queue,
        "task": task.name,
        "attempt": task.attempts,
        "worker_id": worker_id,
    }
    if duration is not None:
        extra["duration"] = round(duration, 6)
    if error is not None:
        extra["error"] = describe_error(error)
    if traceback is not None:
        extra["traceback"] = traceback
    message = name.replace("_", " ")
    if name == "task_discarded":
        message += ": the lease was lost, another worker owns the task now"
    elif name == "task_cancelled":
        message += f" by {task.cancelled_by}"
    logger.log(LEVELS[name], message, extra=extra)
