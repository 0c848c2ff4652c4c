"""What a running handler may know about itself and ask of its worker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shoal.core.errors import TaskCancelled


class Cancellation:
    """Whether someone asked to cancel a running task, and who: set by its worker when a
    heartbeat brings the request, read by the task from any thread."""

    def __init__(self) -> None:
        self._asked = threading.Event()
        self.by: str | None = None

    def request(self, by: str) -> None:
        self.by = by
        self._asked.set()

    @property
    def requested(self) -> bool:
        return self._asked.is_set()


@dataclass(frozen=True, slots=True)
class Context:
    """Passed to any handler parameter annotated ``Context``.

    ``state`` is the app's shared state (``App(state=...)``): a database pool, an HTTP client,
    anything built once per process and shared by every task.
    """

    task_id: str
    queue: str
    name: str
    attempt: int
    max_attempts: int
    worker_id: str
    state: Any = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    stop_worker: Callable[[], None] = field(default=lambda: None, repr=False)
    """Ask the worker to drain and exit, as on SIGTERM; the current task still finishes."""
    cancellation: Cancellation = field(default_factory=Cancellation, repr=False)
    scheduled_at: datetime | None = None
    """For a tick of a schedule: the tick's moment (UTC), also in ``metadata["shoal.tick"]``;
    None for any other task."""

    @property
    def cancel_requested(self) -> bool:
        """Whether someone cancelled this task while it runs (``shoal jobs cancel``). An
        ``async def`` handler is cancelled outright; a plain function cannot be interrupted,
        so it should look now and then, or call :meth:`raise_if_cancelled`."""
        return self.cancellation.requested

    def raise_if_cancelled(self) -> None:
        """Raise :class:`~shoal.core.errors.TaskCancelled` if someone cancelled this task:
        the task then ends ``cancelled``, not retried. (A handler that returns normally
        instead ends ``done``: its work is taken as finished.)"""
        if self.cancellation.requested:
            raise TaskCancelled(self.cancellation.by or "unknown")

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts
