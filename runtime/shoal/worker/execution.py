"""Running one claimed task: decode, call the handler, and decide what its outcome is.

Nothing here touches the backend: the result is an :class:`Outcome` the worker records in a
batch with others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
import enum
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from shoal.app import App, EventName, TaskDefinition
from shoal.app.periodic import TickStart, start_tick
from shoal.core.context import Cancellation, Context
from shoal.core.current import CurrentTask, current_task
from shoal.core.errors import PayloadError, UnknownTask
from shoal.core.models import Claim, Failure, KeptValue, Lease, utcnow
from shoal.core.tracebacks import format_traceback, storable

ThreadOutlived = Callable[["asyncio.Future[object]"], None]


class Kind(enum.Enum):
    """Which backend call records an outcome."""

    ACK = "ack"
    FAIL = "fail"
    RELEASE = "release"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended: done, failed (retrying or dead), released unfinished, or
    cancelled (someone asked; ``claim.task.cancelled_by`` says who).

    ``discarded`` is set once the backend refused to record it (the lease fence): the task
    belongs to another worker now, so the attempt is reported as neither success nor failure.
    """

    claim: Claim
    duration: float
    failure: Failure | None = None
    error: BaseException | None = None
    released: bool = False
    discarded: bool = False
    cancelled: bool = False
    tick: TickStart | None = None
    """For a schedule's tick: whether its handler ran, how late, what it skipped."""
    kept: KeptValue | None = None
    """The return value to store with the ack, when the task keeps its result."""

    @property
    def lease(self) -> Lease:
        return self.claim.lease

    @property
    def kind(self) -> Kind:
        if self.released:
            return Kind.RELEASE
        if self.cancelled:
            return Kind.CANCEL
        return Kind.ACK if self.failure is None else Kind.FAIL

    @property
    def event_name(self) -> EventName:
        if self.discarded:
            return "task_discarded"
        if self.released:
            return "task_released"
        if self.cancelled:
            return "task_cancelled"
        if self.failure is None:
            return "task_succeeded"
        return "task_dead" if self.failure.retry_at is None else "task_retrying"

    def as_discarded(self) -> Outcome:
        return dataclasses.replace(self, discarded=True)


def describe_error(error: BaseException) -> str:
    """The text stored as a task's ``last_error``: type and message, one line.

    Never raises: an exception whose ``__str__`` fails (user code can do anything) is
    described by its ``repr``, and failing that by its type name alone.
    """
    text = _text(error, str)
    if isinstance(error, TimeoutError) and not text:
        return "TimeoutError: the attempt took longer than the task's timeout"
    if text is None:
        unreadable = "(its message could not be read)"
        shown = _text(error, repr)
        text = f"{unreadable} {shown}" if shown else unreadable
    return f"{type(error).__name__}: {text}".strip().rstrip(":")


def _text(error: BaseException, how: Callable[[object], str]) -> str | None:
    try:
        return str(how(error))
    except Exception:
        return None


async def execute(
    app: App,
    claim: Claim,
    *,
    worker_id: str,
    threads: concurrent.futures.Executor,
    stop_worker: Callable[[], None],
    thread_outlived: ThreadOutlived,
    cancellation: Cancellation,
) -> Outcome:
    """Run one claimed task to its outcome; never raises except on cancellation.

    A plain function that outlives its attempt (its timeout, or the worker's cancellation
    at the end of a drain) runs on in its thread: ``thread_outlived`` is handed the future
    of that thread, so that the worker counts the thread as busy until it returns.

    Once ``cancellation`` is requested (someone cancelled the task while it ran), an
    attempt that does not succeed ends cancelled: the asyncio cancellation the worker sends
    an ``async def`` handler, :class:`TaskCancelled` or any other error. A task claimed with
    a cancel already requested (given back, or re-queued by a reap, after the request) ends
    cancelled without running.
    """
    task = claim.task
    started = time.perf_counter()
    if task.cancelled_by is not None:
        return _cancelled(claim, started, task.cancelled_by, None)
    tick: TickStart | None = None
    entered = current_task.set(CurrentTask(task.id, task.name, task.attempts, task.queue))
    try:
        with app.wrappers.around_run(task):  # tracing's consumer span, for one
            definition = app.get_task(task.name)
            arguments = definition.codec.decode(task.payload)
            tick = await start_tick(app, task)
            if tick is not None and not tick.run:
                return Outcome(claim, time.perf_counter() - started, tick=tick)
            if definition.codec.context_parameter:
                arguments[definition.codec.context_parameter] = Context(
                    task_id=task.id,
                    queue=task.queue,
                    name=task.name,
                    attempt=task.attempts,
                    max_attempts=task.max_attempts,
                    worker_id=worker_id,
                    state=app.state,
                    metadata=task.metadata,
                    stop_worker=stop_worker,
                    cancellation=cancellation,
                    scheduled_at=None if tick is None else tick.scheduled_at,
                )
            value = await _call(definition, arguments, threads, thread_outlived)
            kept = _kept(definition, task.id, value)
    except asyncio.CancelledError:
        if cancellation.by is None:
            raise  # the drain's, or the timeout's: not a cancel of the task
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()  # the worker's cancel, answered here
        return _cancelled(claim, started, cancellation.by, None)
    except (UnknownTask, PayloadError) as error:
        # Retrying cannot fix a payload, a name or a return value that cannot be stored (and
        # the handler already ran): end dead at once, with the reason.
        return _failed(app, claim, started, error, None)
    except Exception as error:
        if cancellation.by is not None:
            return _cancelled(claim, started, cancellation.by, error)
        policy = app.tasks[task.name].options.retry
        delay = policy.next_delay(error, task.attempts, task.max_attempts)
        return _failed(app, claim, started, error, delay)
    finally:
        current_task.reset(entered)  # whoever awaits execute() is outside the task again
    return Outcome(claim, time.perf_counter() - started, kept=kept, tick=tick)


def _kept(definition: TaskDefinition[..., object], task_id: str, value: object) -> KeptValue | None:
    """The value to keep with the ack, encoded by the return annotation; raises
    :class:`~shoal.core.errors.ResultInvalid` for one that cannot be kept."""
    seconds, codec = definition.options.keep_result, definition.result_codec
    if seconds is None or codec is None:
        return None
    return KeptValue(task_id, codec.encode(value), utcnow() + timedelta(seconds=seconds))


async def _call(
    definition: TaskDefinition[..., object],
    arguments: dict[str, object],
    threads: concurrent.futures.Executor,
    thread_outlived: ThreadOutlived,
) -> object:
    """Run the handler and return what it returned."""
    timeout = definition.options.timeout
    if definition.is_async:
        if timeout is None:
            return await definition.function(**arguments)  # type: ignore[misc]
        return await _call_async(definition, arguments, timeout)
    loop = asyncio.get_running_loop()
    began: asyncio.Future[object] | None = None
    # In the attempt's context (contextvars), as an async handler is: the current task, and
    # what a wrapper set, such as the current span, are seen by a plain function too.
    call: Callable[[], object] = functools.partial(
        contextvars.copy_context().run, functools.partial(definition.function, **arguments)
    )
    if timeout is not None:
        began = loop.create_future()
        call = functools.partial(_signal_then_call, loop, began, call)
    running = loop.run_in_executor(threads, call)
    try:
        if began is not None:
            # The timeout counts from the moment the function starts in its thread, never
            # the wait for one: a task that has not started cannot have taken too long.
            await asyncio.wait({began, running}, return_when=asyncio.FIRST_COMPLETED)
        done, _ = await asyncio.wait({running}, timeout=timeout)
    finally:
        if not running.done():
            # A thread cannot be interrupted: the attempt ends now (timed out, or cancelled
            # by a drain) while the function runs on until it returns.
            thread_outlived(running)
    if not done:
        raise TimeoutError
    return running.result()


def _signal_then_call(
    loop: asyncio.AbstractEventLoop, began: asyncio.Future[object], call: Callable[[], object]
) -> object:
    loop.call_soon_threadsafe(_resolve, began)
    return call()


async def _call_async(
    definition: TaskDefinition[..., object], arguments: dict[str, object], timeout: float
) -> object:
    timer = asyncio.timeout(timeout)
    try:
        async with timer:
            value = await definition.function(**arguments)  # type: ignore[misc]
    except TimeoutError:
        raise
    except Exception as error:
        if timer.expired():
            raise _ignored_cancellation(timeout) from error
        raise
    if timer.expired():
        # The handler caught the cancellation that the timeout sent, and returned.
        raise _ignored_cancellation(timeout)
    return value


def _ignored_cancellation(timeout: float) -> TimeoutError:
    return TimeoutError(
        f"the handler ignored its cancellation at the task's timeout ({timeout:g}s) "
        "and ran on; handlers must let asyncio.CancelledError propagate"
    )


def _resolve(future: asyncio.Future[object]) -> None:
    if not future.done():
        future.set_result(None)


def _failed(
    app: App,
    claim: Claim,
    started: float,
    error: BaseException,
    delay: float | None,
) -> Outcome:
    """A failed attempt, with its bounded traceback; a final failure of a task that keeps
    its result is kept as that result."""
    now = utcnow()
    retry_at = None if delay is None else now + timedelta(seconds=delay)
    definition = app.tasks.get(claim.task.name)
    keep = None if definition is None else definition.options.keep_result
    keep_until = None if keep is None or retry_at is not None else now + timedelta(seconds=keep)
    failure = Failure(
        claim.lease, storable(describe_error(error)), retry_at, format_traceback(error), keep_until
    )
    return Outcome(claim, time.perf_counter() - started, failure, error)


def _cancelled(claim: Claim, started: float, by: str, error: BaseException | None) -> Outcome:
    stopped = Claim(dataclasses.replace(claim.task, cancelled_by=by), claim.lease)
    return Outcome(stopped, time.perf_counter() - started, error=error, cancelled=True)
