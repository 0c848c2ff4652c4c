"""The App: a backend URL, a registry of tasks, hooks and shared state."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, Unpack, overload

from shoal.app.hooks import EventName, Hook, Hooks
from shoal.app.periodic import Schedule, ScheduleOptions, declare
from shoal.app.tasks import PushOptions, TaskDefinition, TaskOptions
from shoal.backends import Backend, OnConflict, open_backend
from shoal.backends.base import TransactionalPush
from shoal.core.context import Context
from shoal.core.errors import ConfigurationError, UnknownTask
from shoal.core.models import NewTask
from shoal.core.retry import RetryPolicy

P = ParamSpec("P")
R = TypeVar("R")

BACKEND_URL_VARIABLE = "SHOAL_BACKEND_URL"


class Register(Protocol):
    """What ``@app.task(...)`` returns: the decorator proper."""

    @overload
    def __call__(
        self, function: Callable[Concatenate[Context, P], R], /
    ) -> TaskDefinition[P, R]: ...

    @overload
    def __call__(self, function: Callable[P, R], /) -> TaskDefinition[P, R]: ...


class App:
    """Where tasks are registered and pushed.

    ``backend_url`` defaults to ``$SHOAL_BACKEND_URL``, then to ``sqlite:///shoal.db``. On
    Kubernetes leave it out: the operator injects the URL from a Secret. ``state`` is shared
    by every task of a worker through ``Context.state``. ``name`` scopes the app's
    schedules in the backend: registering retires the schedules of the same name that the
    code no longer declares, so apps sharing a backend need names of their own.
    """

    def __init__(
        self,
        backend_url: str | None = None,
        *,
        default_queue: str = "default",
        state: Any = None,
        retry: RetryPolicy | None = None,
        name: str = "default",
    ) -> None:
        self.name = name
        self.backend_url = backend_url or os.environ.get(BACKEND_URL_VARIABLE) or None
        self.default_queue = default_queue
        self.state = state
        self.default_retry = retry or RetryPolicy()
        self.tasks: dict[str, TaskDefinition[Any, Any]] = {}
        self.schedules: dict[str, Schedule] = {}
        self.hooks = Hooks()
        self._backend: Backend | None = None

    # -- registry ----------------------------------------------------------------------------

    @overload
    def task(self, function: Callable[Concatenate[Context, P], R], /) -> TaskDefinition[P, R]: ...

    @overload
    def task(self, function: Callable[P, R], /) -> TaskDefinition[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        priority: int = 0,
    ) -> Register: ...

    def task(
        self,
        function: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        queue: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        priority: int = 0,
    ) -> Any:
        """Register a handler: ``@app.task`` or ``@app.task(queue="emails", timeout=30)``.

        A parameter annotated :class:`Context` receives the task's context; make it the first
        parameter so that type checkers leave it out of ``push``'s signature.

        The name defaults to ``module.function``; it is what is stored with each task, so
        renaming a handler strands the tasks already queued under the old name.
        """
        options = TaskOptions(
            queue=queue or self.default_queue,
            retry=retry or self.default_retry,
            timeout=timeout,
            priority=priority,
        )

        def register(handler: Callable[..., Any]) -> TaskDefinition[Any, Any]:
            task_name = name or f"{_module_name(handler)}.{handler.__qualname__}"
            if task_name in self.tasks:
                raise ConfigurationError(f"a task named {task_name!r} is already registered")
            definition = TaskDefinition(self, handler, task_name, options)
            self.tasks[task_name] = definition
            return definition

        return register if function is None else register(function)

    def schedule(
        self, task: TaskDefinition[Any, Any], **options: Unpack[ScheduleOptions]
    ) -> Schedule:
        """Run ``task`` periodically: ``app.schedule(send, every=timedelta(minutes=5))`` or
        ``cron="30 2 * * *", tz="Europe/Paris"``; see :class:`ScheduleOptions`. Workers
        and ``shoal migrate`` register the app's schedules in the backend."""
        schedule = declare(task, options)
        if schedule.name in self.schedules:
            raise ConfigurationError(
                f"a schedule named {schedule.name!r} is already declared: give name=..."
            )
        self.schedules[schedule.name] = schedule
        return schedule

    def periodic(
        self, **options: Unpack[ScheduleOptions]
    ) -> Callable[[TaskDefinition[P, R]], TaskDefinition[P, R]]:
        """Decorate a task (above ``@app.task``) to run it periodically; see :meth:`schedule`."""

        def declare_over(task: TaskDefinition[P, R]) -> TaskDefinition[P, R]:
            if not isinstance(task, TaskDefinition):
                raise ConfigurationError("put @app.periodic(...) above @app.task")
            self.schedule(task, **options)
            return task

        return declare_over

    def get_task(self, name: str) -> TaskDefinition[Any, Any]:
        try:
            return self.tasks[name]
        except KeyError:
            raise UnknownTask(name, list(self.tasks)) from None

    @property
    def queues(self) -> list[str]:
        """Every queue some registered task uses, sorted."""
        return sorted({t.options.queue for t in self.tasks.values()})

    def on(self, event: EventName) -> Callable[[Hook], Hook]:
        """Register a hook: ``@app.on("task_dead")``; see :mod:`shoal.app.hooks`."""

        def register(hook: Hook) -> Hook:
            self.hooks.add(event, hook)
            return hook

        return register

    # -- backend -----------------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The backend, built on first use (connected by :meth:`open`)."""
        if self._backend is None:
            self._backend = open_backend(self.backend_url)
        return self._backend

    def use_backend(self, backend: Backend | None) -> None:
        """Share an already built backend (and its pool) with another app; ``None`` forgets
        it, so that the next use builds one from ``backend_url``."""
        self._backend = backend

    async def open(self) -> None:
        await self.backend.open()

    async def close(self) -> None:
        if self._backend is not None:
            await self._backend.close()

    async def __aenter__(self) -> App:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- enqueue -----------------------------------------------------------------------------

    async def push(
        self,
        name: str,
        payload: Mapping[str, Any] | bytes | str = b"{}",
        options: PushOptions | None = None,
    ) -> str:
        """Enqueue a task by name with JSON-able arguments (validated like a typed push)."""
        definition = self.get_task(name)
        options = options or {}
        if isinstance(payload, Mapping):
            encoded = definition.codec.encode((), payload)
        else:
            encoded = definition.codec.encode_json(payload)
        [task_id] = await self.push_many(
            [definition.prepare(encoded, options)],
            on_conflict=options.get("on_conflict", OnConflict.RAISE),
            connection=options.get("connection"),
        )
        return task_id

    async def push_many(
        self,
        tasks: Sequence[NewTask],
        *,
        on_conflict: OnConflict = OnConflict.RAISE,
        connection: object | None = None,
    ) -> list[str]:
        """Enqueue prepared tasks (``task.configure(...).prepare(...)``) in one round trip.

        With ``connection`` (an asyncpg connection in an open transaction, on PostgreSQL)
        the tasks are enqueued inside that transaction; a backend that cannot join one
        raises :class:`ConfigurationError`.
        """
        backend = self.backend
        if connection is not None:
            if not isinstance(backend, TransactionalPush):
                raise ConfigurationError(
                    f"{backend.url} cannot enqueue inside a caller's transaction "
                    "(connection=...): transactional enqueue needs a postgresql:// backend"
                )
            return await backend.push_in_transaction(connection, tasks, on_conflict=on_conflict)
        if not tasks:
            return []
        return await backend.push(tasks, on_conflict=on_conflict)


def load_app(path: str) -> App:
    """Import ``module:attribute`` and return the App it names."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(
            f"{path!r} is not module:attribute (for example myproject.tasks:app)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r} for {path!r}: {exc}") from exc
    except Exception as exc:  # the module itself raised: one line saying where, not 37
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        raise ConfigurationError(
            f"importing {module_name!r} for {path!r} raised {type(exc).__name__}: {exc} "
            f"(at {frame.filename}:{frame.lineno}; `python -c 'import {module_name}'` shows "
            "the traceback)"
        ) from exc
    app = getattr(module, attribute, None)
    if not isinstance(app, App):
        raise ConfigurationError(f"{path!r} is not a shoal App (found {type(app).__name__})")
    return app


def _module_name(function: Callable[..., Any]) -> str:
    """The importable name of a function's module, even when it runs as ``__main__``: a
    script that pushes tasks must name them as the worker, which imports it, will."""
    if function.__module__ != "__main__":
        return function.__module__
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return str(spec.name)
    return Path(getattr(main, "__file__", "__main__")).stem
