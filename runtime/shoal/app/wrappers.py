"""Wrappers: code that runs *around* a push and around a task's execution, in their context.

Hooks (:mod:`shoal.app.hooks`) are told after the fact, off the worker's loop; a wrapper is
a context manager entered before and left after, in the same task and context, so that what
it sets (the current span of a trace, say) is seen by the push's tasks and by the handler,
and an exception leaving the handler passes through it. Tracing (:mod:`shoal.tracing`) is
built on them; keep them cheap, since they run on every push and every attempt.

- A push wrapper gets the tasks about to be stored and yields the tasks to store instead
  (the same, or copies with more ``metadata``, such as a trace context).
- A run wrapper gets the claimed task; the handler runs inside it, and a failure (the
  handler's, or a payload that does not fit) leaves it as an exception.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager

from shoal.core.models import NewTask, Task

PushWrapper = Callable[[Sequence[NewTask]], AbstractContextManager[Sequence[NewTask]]]
RunWrapper = Callable[[Task], AbstractContextManager[object]]


class Wrappers:
    """The wrappers of one app, entered in the order they were added (the first outermost)."""

    def __init__(self) -> None:
        self.push: list[PushWrapper] = []
        self.run: list[RunWrapper] = []

    def around_push(self, tasks: Sequence[NewTask]) -> AbstractContextManager[Sequence[NewTask]]:
        if not self.push:  # the common case, kept to a nullcontext (a tenth of a generator's)
            return contextlib.nullcontext(tasks)
        return self._around_push(tasks)

    def around_run(self, task: Task) -> AbstractContextManager[object]:
        return self._around_run(task) if self.run else _NOTHING

    @contextlib.contextmanager
    def _around_push(self, tasks: Sequence[NewTask]) -> Iterator[Sequence[NewTask]]:
        with contextlib.ExitStack() as stack:
            for wrapper in self.push:
                tasks = stack.enter_context(wrapper(tasks))
            yield tasks

    @contextlib.contextmanager
    def _around_run(self, task: Task) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for wrapper in self.run:
                stack.enter_context(wrapper(task))
            yield


_NOTHING: AbstractContextManager[object] = contextlib.nullcontext()
