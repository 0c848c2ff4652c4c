"""Running one claimed task: decode, call the handler, and decide what its outcome is.

Nothing here touches the backend: the result is an :class:`Outcome` the worker records in a
batch with others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from shoal.app import App, EventName, TaskDefinition
from shoal.core.context import Context
from shoal.core.errors import PayloadError, UnknownTask
from shoal.core.models import Claim, Failure, Lease, utcnow


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended: done, failed (retrying or dead), or released unfinished."""

    claim: Claim
    duration: float
    failure: Failure | None = None
    error: BaseException | None = None
    released: bool = False

    @property
    def lease(self) -> Lease:
        return self.claim.lease

    @property
    def kind(self) -> str:
        """Which backend call records it: ``ack``, ``fail`` or ``release``."""
        if self.released:
            return "release"
        return "ack" if self.failure is None else "fail"

    @property
    def event_name(self) -> EventName:
        if self.released:
            return "task_released"
        if self.failure is None:
            return "task_succeeded"
        return "task_dead" if self.failure.retry_at is None else "task_retrying"


def describe_error(error: BaseException) -> str:
    """The text stored as a task's ``last_error``: type and message, one line."""
    if isinstance(error, TimeoutError) and not str(error):
        return "TimeoutError: the attempt took longer than the task's timeout"
    return f"{type(error).__name__}: {error}".strip().rstrip(":")


async def execute(
    app: App,
    claim: Claim,
    *,
    worker_id: str,
    threads: concurrent.futures.Executor,
    stop_worker: Callable[[], None],
) -> Outcome:
    """Run one claimed task to its outcome; never raises except on cancellation."""
    task = claim.task
    started = time.perf_counter()
    try:
        definition = app.get_task(task.name)
        arguments = definition.codec.decode(task.payload)
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
            )
        await _call(definition, arguments, threads)
    except asyncio.CancelledError:
        raise
    except (UnknownTask, PayloadError) as error:
        # Retrying cannot fix a payload or a name: end dead at once, with the reason.
        return _failed(claim, started, error, None)
    except Exception as error:
        policy = app.tasks[task.name].options.retry
        delay = policy.next_delay(error, task.attempts, task.max_attempts)
        return _failed(claim, started, error, delay)
    return Outcome(claim, time.perf_counter() - started)


async def _call(
    definition: TaskDefinition[..., object],
    arguments: dict[str, object],
    threads: concurrent.futures.Executor,
) -> None:
    timeout = definition.options.timeout
    if timeout is None and definition.is_async:
        await definition.function(**arguments)  # type: ignore[misc]  # the common case, direct
        return
    async with asyncio.timeout(timeout):
        if definition.is_async:
            await definition.function(**arguments)  # type: ignore[misc]
        else:
            # A thread cannot be interrupted: on timeout the attempt fails at once, but the
            # function runs on in its thread until it returns.
            call = functools.partial(definition.function, **arguments)
            await asyncio.get_running_loop().run_in_executor(threads, call)


def _failed(claim: Claim, started: float, error: BaseException, delay: float | None) -> Outcome:
    retry_at = None if delay is None else utcnow() + timedelta(seconds=delay)
    failure = Failure(claim.lease, describe_error(error), retry_at)
    return Outcome(claim, time.perf_counter() - started, failure, error)
