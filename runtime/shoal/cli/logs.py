"""Log output for the CLI: readable text for people, JSON lines for log pipelines.

Every line about a task carries its id and queue (passed as ``extra`` by the worker), in
both formats.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

_CONTEXT_FIELDS = ("task_id", "queue", "task", "worker_id", "duration", "error")


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
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, context: Sequence[str] = ()) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        self.context = (*_CONTEXT_FIELDS, *context)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = [
            f"{name}={record.__dict__[name]}"
            for name in self.context
            if name in record.__dict__ and name != "worker_id"
        ]
        return f"{text} {' '.join(context)}" if context else text


def configure(log_format: str, level: str, context: Sequence[str] = ()) -> None:
    """Log to stderr; ``context`` names record attributes to show beyond the task's."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    handler.setFormatter(formatter(context))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
