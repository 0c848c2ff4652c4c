"""Log output for the CLI: readable text for people, JSON lines for log pipelines.

Every line about a task carries its id, name, attempt and queue, in both formats: passed
as ``extra`` by the worker, and added to the records of the tasks' own code by
:class:`~shoal.core.current.TaskContextFilter` on the handler. One event is one line,
whoever logs it: a record that carries an exception (asyncpg's pool during a database
restart logs its tracebacks at warning level) shows the exception's type and message; its
traceback only at ``--log-level debug``. The one exception is a task's failed attempt:
the failure is the user's own code, so its line carries the handler's traceback always (a
``traceback`` field in JSON; indented lines after it in text).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from shoal.core.current import TaskContextFilter

_CONTEXT_FIELDS = ("task_id", "queue", "task", "attempt", "worker_id", "duration", "error")


class JsonFormatter(logging.Formatter):
    def __init__(self, context: Sequence[str] = ()) -> None:
        super().__init__()
        self.context = (*_CONTEXT_FIELDS, *context)

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.context:
            if record.__dict__.get(name) is not None:
                line[name] = record.__dict__[name]
        if (trace := record.__dict__.get("traceback")) is not None:
            line["traceback"] = trace  # a failed attempt's, from the worker
        if record.exc_info and record.exc_info[1] is not None:
            line["exception"] = _one_line(record.exc_info[1])
            if _tracebacks_shown():
                line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, context: Sequence[str] = ()) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        self.context = (*_CONTEXT_FIELDS, *context)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and not _tracebacks_shown():
            record = logging.makeLogRecord(record.__dict__)
            error = record.exc_info[1] if record.exc_info else None
            record.msg = f"{record.getMessage()}: {_one_line(error)}" if error else record.msg
            record.args, record.exc_info, record.exc_text = None, None, None
        text = super().format(record)
        if not _tracebacks_shown():
            text = text.replace("\n", " | ")
        context = [
            f"{name}={record.__dict__[name]}"
            for name in self.context
            if record.__dict__.get(name) is not None and name != "worker_id"
        ]
        text = f"{text} {' '.join(context)}" if context else text
        if (trace := record.__dict__.get("traceback")) is not None:  # a failed attempt's
            text += "\n" + "".join(f"    {line}\n" for line in trace.rstrip().splitlines())
        return text.rstrip("\n")


def _one_line(error: BaseException) -> str:
    try:
        text = " | ".join(line for line in str(error).splitlines() if line.strip())
    except Exception:  # an error that cannot describe itself still has a type
        text = ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _tracebacks_shown() -> bool:
    return logging.getLogger().isEnabledFor(logging.DEBUG)


def configure(log_format: str, level: str, context: Sequence[str] = ()) -> None:
    """Log to stderr; ``context`` names record attributes to show beyond the task's."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    handler.setFormatter(formatter(context))
    handler.addFilter(TaskContextFilter())  # the tasks' own lines say which task they are
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
