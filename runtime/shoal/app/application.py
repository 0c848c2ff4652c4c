"""The App: a backend URL, a registry of tasks, hooks and shared state."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, Unpack, overload

from shoal.app.byname import handle_by_name, prepare_by_name
from shoal.app.connected import Connected
from shoal.app.handles import TaskHandle
from shoal.app.hooks import EventName, Hook, Hooks
from shoal.app.limits import ConcurrencyKey, LimitSpec, check_queue_rate
from shoal.app.opening import Home
from shoal.app.periodic import Schedule, ScheduleOptions, declare
from shoal.app.portal import await_on
from shoal.app.results import KeepResult, keep_seconds
from shoal.app.tasks import PushOptions, TaskDefinition, TaskOptions
from shoal.app.transactional import transactional
from shoal.app.wrappers import Wrappers
from shoal.backends import Backend, OnConflict
from shoal.core.context import Context
from shoal.core.errors import ConfigurationError, UnknownTask
from shoal.core.limits import Rate
from shoal.core.models import NewTask
from shoal.core.retention import Retention
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


class App(Connected):
    """Where tasks are registered and pushed.

    ``backend_url`` defaults to ``$SHOAL_BACKEND_URL``, then to ``sqlite:///shoal.db``. On
    Kubernetes leave it out: the operator injects the URL from a Secret. ``state`` is shared
    by every task of a worker through ``Context.state``. ``retention`` is how long finished
    tasks of its queues are kept (:class:`~shoal.core.retention.Retention`; by default the
    backend's: 7 days for done and cancelled tasks, 30 for dead ones);
    :meth:`queue_options` sets one queue's. ``name`` scopes the app's schedules in the
    backend: registering retires the schedules of the same name that the code no longer
    declares, so apps sharing a backend need names of their own.
    ``keep_result`` (a ``timedelta`` or seconds)
    keeps every task's return value for its handles that long, unless the task says
    otherwise; results are not kept by default, and a kept result outlives its task's
    retention until it expires.
    """

    def __init__(
        self,
        backend_url: str | None = None,
        *,
        default_queue: str = "default",
        state: Any = None,
        retry: RetryPolicy | None = None,
        retention: Retention | None = None,
        name: str = "default",
        keep_result: KeepResult | None = None,
    ) -> None:
        self.name = name
        self.backend_url = backend_url or os.environ.get(BACKEND_URL_VARIABLE) or None
        self.keep_result = keep_seconds(keep_result, what="App")
        self.default_queue = default_queue
        self.state = state
        self.default_retry = retry or RetryPolicy()
        self.retention = retention
        self._queue_retention: dict[str, Retention] = {}
        self.tasks: dict[str, TaskDefinition[Any, Any]] = {}
        self.queue_rates: dict[str, Rate] = {}
        """Rate limits of whole queues (:meth:`limit_queue`)."""
        self.schedules: dict[str, Schedule] = {}
        self.hooks = Hooks()
        self.wrappers = Wrappers()
        self._backend: Backend | None = None
        self._owns_backend = False
        self._home = Home(self.open, self._drop_backend)

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
        rate_limit: str | Rate | None = None,
        concurrency_key: ConcurrencyKey | None = None,
        concurrency_limit: int | None = None,
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
        rate_limit: str | Rate | None = None,
        concurrency_key: ConcurrencyKey | None = None,
        concurrency_limit: int | None = None,
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

        ``rate_limit`` (``"100/s"``, ``"30/m"``, ``"1000/h"``) caps how many of this task
        start per period across all workers; ``concurrency_key`` (a function of the
        arguments, or a template such as ``"{customer_id}"``) with ``concurrency_limit=N``
        lets at most N tasks with one key run at once. The backend enforces both in its
        claim: a held-back task waits in the backend, never in a worker's slot.
        """
        options = TaskOptions(
            queue=queue or self.default_queue,
            retry=retry or self.default_retry,
            timeout=timeout,
            priority=priority,
            limits=LimitSpec.declare(rate_limit, concurrency_key, concurrency_limit),
            keep_result=(
                self.keep_result if keep_result is None else keep_seconds(keep_result, what="task")
            ),
        )

        def register(handler: Callable[..., Any]) -> TaskDefinition[Any, Any]:
            task_name = name or f"{_module_name(handler)}.{handler.__qualname__}"
            if options.limits.rate is not None and options.queue in self.queue_rates:
                raise ConfigurationError(
                    f"task {task_name} cannot have a rate limit: its queue "
                    f"{options.queue!r} has one, and a task draws from one bucket"
                )
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

    def limit_queue(self, queue: str, rate_limit: str | Rate) -> None:
        """Cap how many tasks of ``queue`` start per period, across all workers
        (``"100/s"``); stamped on each task pushed from now on."""
        check_queue_rate(
            queue, {n: (t.options.queue, t.options.limits) for n, t in self.tasks.items()}
        )
        self.queue_rates[queue] = Rate.parse(rate_limit)

    @property
    def queues(self) -> list[str]:
        """Every queue some registered task uses, sorted."""
        return sorted({t.options.queue for t in self.tasks.values()})

    def queue_options(self, queue: str, *, retention: Retention) -> None:
        """Settings of one queue that win over the app's: ``retention``, how long its
        finished tasks are kept. Workers of every app serving the queue should agree: the
        worker that reaps applies its own app's."""
        self._queue_retention[queue] = retention

    def retention_for(self, queue: str) -> Retention | None:
        """The retention declared for ``queue`` (its own, else the app's), or None: then
        the backend's default applies."""
        return self._queue_retention.get(queue, self.retention)

    def on(self, event: EventName) -> Callable[[Hook], Hook]:
        """Register a hook: ``@app.on("task_dead")``; see :mod:`shoal.app.hooks`."""

        def register(hook: Hook) -> Hook:
            self.hooks.add(event, hook)
            return hook

        return register

    # -- enqueue -----------------------------------------------------------------------------

    async def push(
        self,
        name: str,
        payload: Mapping[str, Any] | bytes | str = b"{}",
        options: PushOptions | None = None,
    ) -> TaskHandle[Any]:
        """Enqueue a task registered here by name with JSON-able arguments (validated like a
        typed push) and return its handle; :class:`UnknownTask` otherwise (see
        :meth:`push_by_name`)."""
        self.get_task(name)
        return await self.push_by_name(name, payload, **(options or {}))

    async def push_by_name(
        self,
        name: str,
        arguments: Mapping[str, Any] | bytes | str | None = None,
        *,
        queue: str | None = None,
        **options: Unpack[PushOptions],
    ) -> TaskHandle[Any]:
        """Enqueue the task ``name`` without its handler's code, as a producer in another
        service does: ``await app.push_by_name("billing.charge", {"invoice_id": 42},
        queue="billing")``.

        ``arguments`` are the handler's keyword arguments (a mapping, or a JSON object
        already encoded). A task registered here is checked against its type hints now and
        defaults to its queue; any other needs ``queue`` and is checked by the worker before
        it runs (an unknown name or arguments that do not fit end it dead, with the reason).
        Returns its handle: typed by the handler's return annotation when the task is
        registered here, otherwise its ``result()`` is the kept JSON value as it is.
        """
        task = prepare_by_name(self, name, arguments, queue, options)
        [task_id] = await self.push_many(
            [task],
            on_conflict=options.get("on_conflict", OnConflict.RAISE),
            connection=options.get("connection"),
        )
        return handle_by_name(self, name, task_id)

    def push_by_name_sync(
        self,
        name: str,
        arguments: Mapping[str, Any] | bytes | str | None = None,
        *,
        queue: str | None = None,
        **options: Unpack[PushOptions],
    ) -> TaskHandle[Any]:
        """:meth:`push_by_name` for code without an event loop (see :meth:`call_sync`)."""
        task = prepare_by_name(self, name, arguments, queue, options)
        [task_id] = self.push_many_sync(
            [task],
            on_conflict=options.get("on_conflict", OnConflict.RAISE),
            connection=options.get("connection"),
        )
        return handle_by_name(self, name, task_id)

    async def push_many(
        self,
        tasks: Sequence[NewTask],
        *,
        on_conflict: OnConflict = OnConflict.RAISE,
        connection: object | None = None,
    ) -> list[str]:
        """Enqueue prepared tasks (``task.configure(...).prepare(...)``) in one round trip.

        An app that is not open opens on the running loop (and closes when that loop ends);
        one open on a loop running in another thread pushes there.

        With ``connection`` (an async connection in an open transaction, on PostgreSQL:
        asyncpg, psycopg or SQLAlchemy; see :mod:`shoal.app.transactional`) the tasks are
        enqueued inside that transaction; a backend that cannot join one raises
        :class:`ConfigurationError`.
        """
        if connection is not None:  # the caller's connection does the work: nothing to open
            joined = transactional(self.backend)
            with self.wrappers.around_push(tasks) as tasks:
                return await joined.push_in_transaction(connection, tasks, on_conflict=on_conflict)
        if not tasks:
            return []
        elsewhere = self._home.running_elsewhere()
        if elsewhere is not None:
            # The app's connections belong to a loop running in another thread (the portal's,
            # after a sync push): the push runs there, awaited from here.
            return await await_on(elsewhere, self.push_many, tasks, on_conflict=on_conflict)
        await self._home.ensure_open(self.close)
        with self.wrappers.around_push(tasks) as tasks:
            return await self.backend.push(tasks, on_conflict=on_conflict)

    def push_many_sync(
        self,
        tasks: Sequence[NewTask],
        *,
        on_conflict: OnConflict = OnConflict.RAISE,
        connection: object | None = None,
    ) -> list[str]:
        """:meth:`push_many` for code without an event loop (see :meth:`call_sync`).

        With ``connection`` (a sync driver connection in an open transaction) the push runs
        in this thread on that connection, if the backend can (``push_in_transaction_sync``);
        otherwise :class:`ConfigurationError`.
        """
        if connection is not None:
            with self.wrappers.around_push(tasks) as tasks:
                joined = transactional(self.backend)
                return joined.push_in_transaction_sync(connection, tasks, on_conflict=on_conflict)
        return self.call_sync(self.push_many, tasks, on_conflict=on_conflict)


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
