"""Task definitions: a handler, its options, and the typed way to enqueue it."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    ParamSpec,
    TypedDict,
    TypeVar,
    Unpack,
    overload,
)

from shoal.app.handles import TaskHandle
from shoal.app.limits import NO_SPEC, LimitSpec
from shoal.app.payloads import PayloadCodec
from shoal.app.results import ResultCodec
from shoal.backends.base import OnConflict
from shoal.core.errors import ConfigurationError
from shoal.core.ids import new_id
from shoal.core.limits import NO_LIMITS, TaskLimits
from shoal.core.models import NewTask, utcnow
from shoal.core.retry import RetryPolicy

if TYPE_CHECKING:
    from shoal.app import App

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class PushOptions(TypedDict, total=False):
    """Options of one enqueue; every one is optional."""

    priority: int
    """Higher runs first; the task's default priority otherwise."""
    run_at: datetime
    """Do not run before this time (timezone-aware)."""
    delay: float | timedelta
    """Do not run before this many seconds from now."""
    max_attempts: int
    """Attempts in all; the task's retry policy decides otherwise."""
    idempotency_key: str
    """At most one unfinished task per queue holds a key; see ``on_conflict``."""
    on_conflict: OnConflict
    """Raise ``IdempotencyConflict`` (default) or skip and return the existing task's id."""
    task_id: str
    """Choose the id yourself (a UUID string); one is generated otherwise."""
    metadata: Mapping[str, str]
    """Free-form labels stored with the task."""
    connection: object
    """A connection inside an open transaction: the push joins it, so commit enqueues and
    rollback enqueues nothing (PostgreSQL only; other backends raise ``ConfigurationError``).
    asyncpg, psycopg ``AsyncConnection``, SQLAlchemy ``AsyncConnection``/``AsyncSession``
    with ``push``; psycopg ``Connection``, SQLAlchemy ``Connection``/``Session`` and Django's
    connection with ``push_sync``, in the caller's thread."""


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """How a task runs, fixed by ``@app.task(...)``."""

    queue: str
    retry: RetryPolicy
    timeout: float | None
    """Seconds an attempt may take before it is failed (and retried per the policy)."""
    priority: int
    limits: LimitSpec = NO_SPEC
    """Rate limit and concurrency key, enforced by the backend's claim (``app/limits.py``)."""
    keep_result: float | None = None
    """Seconds the return value (or the final failure) is kept for handles; None: not kept."""


class TaskDefinition(Generic[P, R]):
    """A registered handler. Call it to run it inline; ``push`` it to run it on a worker."""

    def __init__(self, app: App, function: Callable[P, R], name: str, options: TaskOptions) -> None:
        self.app = app
        self.function = function
        self.name = name
        self.options = options
        self.codec = PayloadCodec(function)
        self.result_codec: ResultCodec[Any] | None = (
            None if options.keep_result is None else ResultCodec(function, name)
        )
        self.is_async = inspect.iscoroutinefunction(function)
        self.__doc__ = function.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        """Run the handler inline, in this process (a context must be passed by hand)."""
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<task {self.name} queue={self.options.queue}>"

    def prepare(
        self, payload: bytes, options: PushOptions | None = None, *, queue: str | None = None
    ) -> NewTask:
        """Build the stored form of one call from an encoded payload and push options
        (``queue``: another queue than the task's own, for a push by name)."""
        queue = queue or self.options.queue
        return new_task(
            self.name,
            queue,
            payload,
            options or {},
            max_attempts=self.options.retry.max_attempts,
            priority=self.options.priority,
            limits=self._limits(payload, queue),
        )

    def _limits(self, payload: bytes, queue: str) -> TaskLimits:
        spec = self.options.limits
        queue_rate = self.app.queue_rates.get(queue)
        if spec is NO_SPEC and queue_rate is None:
            return NO_LIMITS
        arguments = self.codec.decode(payload) if spec.needs_arguments else {}
        return spec.stamp(self.name, queue_rate, arguments)

    def handle(self, task_id: str) -> TaskHandle[Any]:
        """A handle on a task of this kind pushed earlier (by id, from anywhere)."""
        return TaskHandle(self.app, task_id, self.name, self.result_codec)

    # The handle's type is what the handler returns, awaited for an ``async def``: hence
    # the pairs of overloads, one for coroutine functions and one for plain ones.

    @overload
    def configure(
        self: TaskDefinition[P, Coroutine[Any, Any, T]], **options: Unpack[PushOptions]
    ) -> ConfiguredTask[P, T]: ...

    @overload
    def configure(
        self: TaskDefinition[P, T], **options: Unpack[PushOptions]
    ) -> ConfiguredTask[P, T]: ...

    def configure(self, **options: Unpack[PushOptions]) -> ConfiguredTask[P, Any]:
        """Bind push options: ``await send.configure(delay=60).push(to="a@b.c")``."""
        return ConfiguredTask(self, options)

    @overload
    async def push(
        self: TaskDefinition[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...

    @overload
    async def push(
        self: TaskDefinition[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...

    async def push(self, *args: Any, **kwargs: Any) -> TaskHandle[Any]:
        """Enqueue one call with the task's default options; returns its handle."""
        return await ConfiguredTask(self, {}).push(*args, **kwargs)

    @overload
    async def push_many(
        self: TaskDefinition[P, Coroutine[Any, Any, T]],
        calls: Iterable[Mapping[str, Any]],
        **options: Unpack[PushOptions],
    ) -> list[TaskHandle[T]]: ...

    @overload
    async def push_many(
        self: TaskDefinition[P, T],
        calls: Iterable[Mapping[str, Any]],
        **options: Unpack[PushOptions],
    ) -> list[TaskHandle[T]]: ...

    async def push_many(
        self, calls: Iterable[Mapping[str, Any]], **options: Unpack[PushOptions]
    ) -> list[TaskHandle[Any]]:
        """Enqueue many calls (keyword arguments each) in one round trip, all or nothing;
        returns their handles in order."""
        return await ConfiguredTask(self, options).push_many(calls)

    @overload
    def push_sync(
        self: TaskDefinition[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...

    @overload
    def push_sync(
        self: TaskDefinition[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle[T]: ...

    def push_sync(self, *args: Any, **kwargs: Any) -> TaskHandle[Any]:
        """:meth:`push` for code without an event loop (a script, a sync web view, a
        thread): thread-safe, on one background loop and pool per process (``App.call_sync``).
        Returns the handle, whose ``result_sync()`` waits without a loop too."""
        return ConfiguredTask(self, {}).push_sync(*args, **kwargs)

    @overload
    def push_many_sync(
        self: TaskDefinition[P, Coroutine[Any, Any, T]],
        calls: Iterable[Mapping[str, Any]],
        **options: Unpack[PushOptions],
    ) -> list[TaskHandle[T]]: ...

    @overload
    def push_many_sync(
        self: TaskDefinition[P, T],
        calls: Iterable[Mapping[str, Any]],
        **options: Unpack[PushOptions],
    ) -> list[TaskHandle[T]]: ...

    def push_many_sync(
        self, calls: Iterable[Mapping[str, Any]], **options: Unpack[PushOptions]
    ) -> list[TaskHandle[Any]]:
        """:meth:`push_many` for code without an event loop; returns the handles in order."""
        return ConfiguredTask(self, options).push_many_sync(calls)


def new_task(
    name: str,
    queue: str,
    payload: bytes,
    options: PushOptions,
    *,
    max_attempts: int,
    priority: int,
    limits: TaskLimits = NO_LIMITS,
) -> NewTask:
    """The stored form of one call: an encoded payload, push options over the defaults
    given (the task's own, or the app's for a task pushed by name), and the limits stamped
    on it."""
    if "run_at" in options and "delay" in options:
        raise ConfigurationError("give run_at or delay, not both")
    run_at = options.get("run_at") or utcnow()
    if run_at.tzinfo is None:
        raise ConfigurationError("run_at must be timezone-aware (use datetime.now(UTC))")
    delay = options.get("delay", 0)
    run_at += delay if isinstance(delay, timedelta) else timedelta(seconds=delay)
    max_attempts = options.get("max_attempts", max_attempts)
    if max_attempts < 1:
        raise ConfigurationError("max_attempts must be at least 1")
    return NewTask(
        id=options.get("task_id") or new_id(),
        queue=queue,
        name=name,
        payload=payload,
        run_at=run_at,
        max_attempts=max_attempts,
        priority=options.get("priority", priority),
        idempotency_key=options.get("idempotency_key"),
        metadata=dict(options.get("metadata", {})),
        limits=limits,
    )


class ConfiguredTask(Generic[P, R]):
    """A task with push options bound; see :meth:`TaskDefinition.configure`. ``R`` is
    what its handles' ``result()`` returns."""

    def __init__(self, definition: TaskDefinition[P, Any], options: PushOptions) -> None:
        self.definition = definition
        self.options = options

    def prepare(self, *args: P.args, **kwargs: P.kwargs) -> NewTask:
        """Validate one call and build its stored form, for ``App.push_many``."""
        payload = self.definition.codec.encode(args, kwargs)
        return self.definition.prepare(payload, self.options)

    async def push(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        [handle] = await self._push([self.prepare(*args, **kwargs)])
        return handle

    async def push_many(self, calls: Iterable[Mapping[str, Any]]) -> list[TaskHandle[R]]:
        return await self._push(self._prepare_many(calls))

    def push_sync(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """:meth:`push` for code without an event loop; with ``connection`` (a sync
        connection in an open transaction) it joins that transaction, in this thread."""
        if "connection" in self.options:
            [handle] = self._push_in_transaction_sync([self.prepare(*args, **kwargs)])
            return handle
        return self.definition.app.call_sync(self.push, *args, **kwargs)

    def push_many_sync(self, calls: Iterable[Mapping[str, Any]]) -> list[TaskHandle[R]]:
        if "connection" in self.options:
            return self._push_in_transaction_sync(self._prepare_many(calls))
        return self.definition.app.call_sync(self.push_many, calls)

    def _prepare_many(self, calls: Iterable[Mapping[str, Any]]) -> list[NewTask]:
        if "idempotency_key" in self.options:
            raise ConfigurationError("one idempotency_key cannot cover a batch; prepare each call")
        encode = self.definition.codec.encode
        return [self.definition.prepare(encode((), call), self.options) for call in calls]

    def _push_in_transaction_sync(self, tasks: list[NewTask]) -> list[TaskHandle[R]]:
        ids = self.definition.app.push_many_sync(
            tasks,
            on_conflict=self.options.get("on_conflict", OnConflict.RAISE),
            connection=self.options["connection"],
        )
        return [self.definition.handle(task_id) for task_id in ids]

    async def _push(self, tasks: list[NewTask]) -> list[TaskHandle[R]]:
        ids = await self.definition.app.push_many(
            tasks,
            on_conflict=self.options.get("on_conflict", OnConflict.RAISE),
            connection=self.options.get("connection"),
        )
        return [self.definition.handle(task_id) for task_id in ids]
