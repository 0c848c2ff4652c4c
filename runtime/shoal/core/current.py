"""The task this code runs for, as a context variable, and a logging filter that says so.

The worker sets :data:`current_task` around every handler it runs (in the handler's thread
too, for plain functions), so that any code below a handler, however deep, can ask which
task it serves without a :class:`~shoal.core.context.Context` being passed down. Its main
use is :class:`TaskContextFilter`: added to a handler of the user's logging, it stamps every
record logged while a task runs with the task's id, name, attempt and queue, so the user's
own log lines can be found by task as the worker's are. ``shoal worker`` adds it to the
handler it logs with; JSON logs show the fields.

::

    import logging
    from shoal import TaskContextFilter

    handler = logging.StreamHandler()
    handler.addFilter(TaskContextFilter())
    handler.setFormatter(logging.Formatter("%(message)s task=%(task_id)s"))
"""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CurrentTask:
    """What a log line about a task carries."""

    task_id: str
    name: str
    attempt: int
    queue: str


current_task: contextvars.ContextVar[CurrentTask | None] = contextvars.ContextVar(
    "shoal_current_task", default=None
)
"""The task whose handler is running here, or None outside any task."""


class TaskContextFilter(logging.Filter):
    """Adds ``task_id``, ``task``, ``attempt`` and ``queue`` to records logged inside a task.

    Outside a task the fields are set to ``None`` (so that a format string naming them never
    fails); a record that already carries one (the worker's own lines) keeps its own. Never
    drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        task = current_task.get()
        fields = {
            "task_id": task.task_id if task else None,
            "task": task.name if task else None,
            "attempt": task.attempt if task else None,
            "queue": task.queue if task else None,
        }
        for name, value in fields.items():
            if name not in record.__dict__:
                setattr(record, name, value)
        return True
