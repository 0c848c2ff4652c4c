"""What a running handler may know about itself and ask of its worker."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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
    scheduled_at: datetime | None = None
    """For a tick of a schedule: the tick's moment (UTC), also in ``metadata["shoal.tick"]``;
    None for any other task."""

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts
