"""Event hooks: code of the user's (or shoal's own metrics) told about every transition.

A hook is an ``async def`` or a plain function taking an :class:`Event`. The worker delivers
events from a task of its own, in order, so that a slow hook delays later hooks but never the
worker's loop (its heartbeats); a plain-function hook runs in a thread, so that one that
blocks cannot stall the event loop either.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, get_args

from shoal.core.models import Task

EventName = Literal[
    "worker_started",
    "worker_stopped",
    "task_started",
    "task_succeeded",
    "task_retrying",
    "task_dead",
    "task_released",
    "task_discarded",
    "task_cancelled",
]
EVENT_NAMES: tuple[str, ...] = get_args(EventName)

logger = logging.getLogger("shoal.hooks")


@dataclass(frozen=True, slots=True)
class Event:
    """What happened. ``task`` is set for task events; ``duration`` and ``error`` once the
    attempt has ended."""

    name: EventName
    worker_id: str
    task: Task | None = None
    duration: float | None = None
    error: BaseException | None = None


Hook = Callable[[Event], Awaitable[None] | None]


class Hooks:
    """The hooks of one app, by event name. A failing hook is logged, never fatal."""

    def __init__(self) -> None:
        self._hooks: dict[str, list[Hook]] = {name: [] for name in EVENT_NAMES}

    def add(self, name: EventName, hook: Hook) -> None:
        if name not in self._hooks:
            raise ValueError(f"no event is named {name!r}; events: {', '.join(EVENT_NAMES)}")
        self._hooks[name].append(hook)

    def wants(self, name: EventName) -> bool:
        """Whether any hook listens for ``name`` (lets the worker skip the call per task)."""
        return bool(self._hooks[name])

    async def emit(self, event: Event) -> None:
        """Call the hooks of ``event`` one after another; plain functions in a thread."""
        for hook in self._hooks[event.name]:
            try:
                if _is_async(hook):
                    await hook(event)  # type: ignore[misc]
                else:
                    outcome = await asyncio.to_thread(hook, event)
                    if inspect.isawaitable(outcome):  # a plain function returning a coroutine
                        await outcome
            except Exception:
                logger.exception("the %s hook %r failed", event.name, hook)


def _is_async(hook: Hook) -> bool:
    return inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(
        getattr(hook, "__call__", None)  # noqa: B004  # an object with an async __call__
    )
