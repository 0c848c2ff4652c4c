"""Handles: what a push returns, to ask after the task and wait for its result.

A handle is small: the task's id, the app it was pushed through, and the codec of the task's
return value. Waiting is the backend's own (``Backend.wait_for_result``): woken by its
hints of finished tasks, so a thousand handles waiting in a process share one listener.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Generic, TypeVar

from shoal.core.errors import (
    ResultTimeout,
    ResultUnavailable,
    TaskFailed,
    TaskNotFound,
    TaskWasCancelled,
)
from shoal.core.models import TaskResult, TaskStatus

if TYPE_CHECKING:
    from shoal.app.application import App
    from shoal.app.results import ResultCodec

R = TypeVar("R")

_LONGEST_WAIT = 3600.0
"""A wait without a timeout asks the backend in spells of this many seconds."""


class TaskHandle(Generic[R]):
    """One pushed task: ``handle.id``, ``await handle.status()``, ``await handle.result()``
    (``status_sync()`` and ``result_sync()`` from code without an event loop).

    ``R`` is the task's return type; :meth:`result` returns it, decoded and validated
    against the task's return annotation, when the task keeps its result
    (``@app.task(keep_result=...)``).
    """

    __slots__ = ("_app", "_codec", "id", "task_name")

    def __init__(
        self, app: App, task_id: str, task_name: str, codec: ResultCodec[R] | None
    ) -> None:
        self._app = app
        self._codec = codec
        self.id = task_id
        self.task_name = task_name

    def __repr__(self) -> str:
        return f"<TaskHandle {self.task_name} {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    async def status(self) -> TaskStatus:
        """Where the task is now. A task purged since it finished answers with its kept
        result's status; raises :class:`TaskNotFound` when neither is left."""
        task = await self._app.backend.get(self.id)
        if task is not None:
            return task.status
        result = await self._app.backend.result(self.id)  # raises TaskNotFound
        if result is None:  # cannot happen: a result without a task is a finished one
            raise TaskNotFound(self.id)
        return result.status

    async def result(self, timeout: float | None = None) -> R:
        """Wait for the task to finish and return its value (``timeout`` seconds at most;
        None waits as long as it takes).

        Raises :class:`TaskFailed` (the remote error's type, message and traceback) when the
        task ended dead, :class:`TaskWasCancelled` when it was cancelled, :class:`ResultTimeout`
        when it has not finished in time, and :class:`ResultUnavailable` when the task does
        not keep its result or it has expired.
        """
        if self._codec is None:
            raise ResultUnavailable(
                self.id,
                f"task {self.task_name} does not keep its result: declare it with "
                "@app.task(keep_result=...) or App(keep_result=...) to wait for its value",
            )
        outcome = await self._wait(math.inf if timeout is None else timeout)
        if outcome is None:
            raise ResultTimeout(self.id, timeout or 0.0, str(await self.status()))
        if outcome.status is TaskStatus.DEAD:
            raise TaskFailed(self.id, outcome.error or "(no error was recorded)", outcome.traceback)
        if outcome.status is TaskStatus.CANCELLED:
            raise TaskWasCancelled(self.id, outcome.cancelled_by)
        if outcome.value is None:
            raise ResultUnavailable(
                self.id,
                f"task {self.id} is done but its result is gone: it expired (keep_result), or "
                "the worker that ran it did not keep results",
            )
        return self._codec.decode(outcome.value)

    def status_sync(self) -> TaskStatus:
        """:meth:`status` for code without an event loop (``App.call_sync``)."""
        return self._app.call_sync(self.status)

    def result_sync(self, timeout: float | None = None) -> R:
        """:meth:`result` for code without an event loop (``App.call_sync``): blocks this
        thread until the task finishes or ``timeout`` seconds have passed."""
        return self._app.call_sync(self.result, timeout)

    async def _wait(self, timeout: float) -> TaskResult | None:
        backend = self._app.backend
        while True:  # one look at least, even with no time to wait
            spell = min(max(timeout, 0.0), _LONGEST_WAIT)
            outcome = await backend.wait_for_result(self.id, spell)
            timeout -= spell
            if outcome is not None or timeout <= 0:
                return outcome
