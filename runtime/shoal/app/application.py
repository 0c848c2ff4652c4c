"""The App: a backend URL, a registry of tasks, hooks and shared state."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, overload

from shoal.app.handles import TaskHandle
from shoal.app.hooks import EventName, Hook, Hooks
from shoal.app.results import KeepResult, keep_seconds
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
    by every task of a worker through ``Context.state``. ``keep_result`` (a ``timedelta``
    or seconds) keeps every task's return value for its handles that long, unless the task
    says otherwise; results are not kept by default.
    """

    def __init__(
        self,
        backend_url: str | None = None,
        *,
        default_queue: str = "default",
        state: Any = None,
        retry: RetryPolicy | None = None,
        keep_result: KeepResult | None = None,
    ) -> None:
        self.backend_url = backend_url or os.environ.get(BACKEND_URL_VARIABLE) or None
        self.keep_result = keep_seconds(keep_result, what="App")
        self.default_queue = default_queue
        self.state = state
        self.default_retry = retry or RetryPolicy()
        self.tasks: dict[str, TaskDefinition[Any, Any]] = {}
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
        keep_result: KeepResult | None = None,
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
        keep_result: KeepResult | None = None,
    ) -> Any:
        """Register a handler: ``@app.task`` or ``@app.task(queue="emails", timeout=30)``.

        ``keep_result`` (a ``timedelta`` or seconds; 0 turns off the app's default) keeps
        the return value, encoded by the return annotation, or the final failure, for
        ``await handle.result()``; the backend deletes it once that time has passed.

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
            keep_result=(
                self.keep_result if keep_result is None else keep_seconds(keep_result, what="task")
            ),
        )

        def register(handler: Callable[..., Any]) -> TaskDefinition[Any, Any]:
            task_name = name or f"{_module_name(handler)}.{handler.__qualname__}"
            if task_name in self.tasks:
                raise ConfigurationError(f"a task named {task_name!r} is already registered")
            definition = TaskDefinition(self, handler, task_name, options)
            self.tasks[task_name] = definition
            return definition

        return register if function is None else register(function)

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
    ) -> TaskHandle[Any]:
        """Enqueue a task by name with JSON-able arguments (validated like a typed push);
        returns its handle."""
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
        return definition.handle(task_id)

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
