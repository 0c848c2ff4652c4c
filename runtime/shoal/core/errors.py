"""Every error shoal raises, in one tree.

::

    ShoalError
    ├── ConfigurationError         bad settings, bad URL, unknown app path
    │   ├── UnsupportedBackend     a URL scheme no backend serves
    │   ├── MissingDriver          the backend's optional dependency is not installed
    │   ├── MissingExtra           another optional part of shoal is not installed (the board)
    │   └── BackendPluginError     an installed backend plugin failed to load or to build one
    ├── BackendError               the backend failed; names the URL without its password
    │   ├── BackendUnavailable     cannot connect, or the connection was lost
    │   ├── SchemaMissing          the schema is absent or out of date: run `shoal migrate`
    │   ├── DatasetLost            the backend's data vanished under a running process
    │   └── NotDurable             a restart of the server would lose tasks, and that was refused
    ├── InvalidTask                a pushed task holds text no backend can store (NUL)
    ├── IdempotencyConflict        a push reused an idempotency key of an unfinished task
    ├── LeaseLost                  a worker acted on a task it no longer owns
    ├── TaskNotFound               no task has that id
    ├── ScheduleNotFound           no schedule has that name
    ├── ResultError                waiting for a task's result ended without a value
    │   ├── TaskFailed             the task ended dead: its error type, message, traceback
    │   ├── TaskWasCancelled       the task was cancelled: it has no result (and who asked)
    │   ├── ResultUnavailable      the task finished but its result is not kept (or expired)
    │   └── ResultTimeout          the task did not finish within the wait's timeout
    ├── UnknownTask                no handler is registered under that name
    ├── PayloadError               a payload cannot become the handler's arguments
    │   ├── PayloadUndecodable     the bytes are not valid JSON
    │   ├── PayloadInvalid         the JSON does not fit the handler's type hints
    │   └── ResultInvalid          a return value does not fit the handler's annotation
    └── TaskControl                raised by task code to steer its own outcome
        ├── Retry                  run again later, at a chosen delay
        ├── PermanentFailure       stop now: the task ends dead, never retried
        └── TaskCancelled          someone cancelled the running task: it ends cancelled

Each class's docstring is its default message. Driver errors are translated at the backend
boundary with ``raise ... from exc`` so that callers only ever catch ``ShoalError``.
"""

from __future__ import annotations

from collections.abc import Sequence


class ShoalError(Exception):
    """A shoal operation failed."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or _default_message(type(self))
        super().__init__(self.message)


def _default_message(cls: type) -> str:
    return (cls.__doc__ or cls.__name__).strip().splitlines()[0]


class ConfigurationError(ShoalError):
    """The configuration is invalid."""


class UnsupportedBackend(ConfigurationError):
    """No backend, built in or installed, serves this URL scheme."""


class MissingDriver(ConfigurationError):
    """The backend's driver is not installed."""

    def __init__(self, backend: str, extra: str) -> None:
        self.extra = extra
        super().__init__(
            f"the {backend} backend needs an optional dependency: pip install 'shoal[{extra}]'"
        )


class MissingExtra(ConfigurationError):
    """An optional part of shoal is not installed."""

    def __init__(self, part: str, extra: str) -> None:
        self.extra = extra
        super().__init__(f"{part} needs an optional dependency: pip install 'shoal[{extra}]'")


class BackendPluginError(ConfigurationError):
    """An installed backend plugin failed to load or to build a backend."""

    def __init__(self, scheme: str, distribution: str, problem: str) -> None:
        self.scheme = scheme
        self.distribution = distribution
        super().__init__(
            f"the {scheme}:// backend plugin from the distribution {distribution} {problem}"
        )


class BackendError(ShoalError):
    """The backend failed."""

    def __init__(self, message: str | None = None, *, url: str = "") -> None:
        self.url = url
        text = message or _default_message(type(self))
        super().__init__(f"{text} ({url})" if url else text)


class BackendUnavailable(BackendError):
    """Cannot reach the backend; check that it runs and that the URL is right."""


class SchemaMissing(BackendError):
    """The shoal schema is missing or out of date; run `shoal migrate` first."""


class InvalidTask(ShoalError):
    """A task holds text that no backend can store; nothing was enqueued."""

    def __init__(self, task_id: str, field: str, problem: str) -> None:
        self.task_id = task_id
        self.field = field
        """The :class:`~shoal.core.models.NewTask` field at fault."""
        super().__init__(f"task {task_id!r}: {problem}; nothing was enqueued")


class DatasetLost(BackendError):
    """The backend's data vanished: the server lost it (a restart without persistence, a
    flush, a failover to an empty replica); run `shoal migrate` to accept the loss."""


class NotDurable(BackendError):
    """The backend would lose acknowledged tasks on a restart, and durability is required."""


class IdempotencyConflict(ShoalError):
    """An unfinished task already holds this idempotency key."""

    def __init__(self, queue: str, conflicting_keys: Sequence[str], total: int) -> None:
        self.queue = queue
        self.conflicting_keys = tuple(conflicting_keys)
        self.total = total
        super().__init__(
            f"{len(self.conflicting_keys)} of {total} tasks reuse idempotency keys of unfinished "
            f"tasks on queue {queue!r}: {', '.join(self.conflicting_keys)}; nothing was enqueued"
        )


class LeaseLost(ShoalError):
    """The lease expired and the task belongs to someone else now; the result was not saved."""

    def __init__(self, task_ids: Sequence[str]) -> None:
        self.task_ids = tuple(task_ids)
        super().__init__(f"{_default_message(LeaseLost)}: {', '.join(self.task_ids)}")


class TaskNotFound(ShoalError):
    """No task has this id."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(f"no task has the id {task_id!r}")


class ScheduleNotFound(ShoalError):
    """No schedule has that name: `shoal schedules` lists them."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule is named {name!r}: `shoal schedules` lists them")
        self.name = name


class UnknownTask(ShoalError):
    """No handler is registered under this task name."""

    def __init__(self, name: str, known: Sequence[str] = ()) -> None:
        self.name = name
        hint = f"; known tasks: {', '.join(sorted(known))}" if known else ""
        super().__init__(f"no task named {name!r} is registered{hint}")


class PayloadError(ShoalError):
    """The payload cannot become the handler's arguments."""


class PayloadUndecodable(PayloadError):
    """The payload is not valid JSON."""


class PayloadInvalid(PayloadError):
    """The payload does not fit the handler's type hints."""


class TaskControl(ShoalError):
    """Task code asked for a particular outcome."""


class Retry(TaskControl):
    """The task asked to be retried."""

    def __init__(self, delay: float = 0.0, reason: str | None = None) -> None:
        self.delay = delay
        super().__init__(reason or f"retry requested in {delay:g}s")


class PermanentFailure(TaskControl):
    """The task failed permanently and will not be retried."""


class TaskCancelled(TaskControl):
    """The task was cancelled while it ran."""

    def __init__(self, by: str) -> None:
        self.by = by
        super().__init__(f"{_default_message(TaskCancelled)}, by {by}")


class ResultInvalid(PayloadError):
    """The task's return value does not fit its return annotation or cannot be stored."""


class ResultError(ShoalError):
    """Waiting for the task's result ended without a value."""

    def __init__(self, task_id: str, message: str | None = None) -> None:
        self.task_id = task_id
        super().__init__(message)


class TaskFailed(ResultError):
    """The task failed for good (dead)."""

    def __init__(self, task_id: str, error: str, traceback: str | None) -> None:
        kind, separator, message = error.partition(": ")
        # ``error`` is ``Type: message`` (worker.execution.describe_error); the reaper's
        # words ("lease expired 3 times: ...") name no exception type.
        named = bool(separator) and kind.replace(".", "").replace("_", "").isalnum()
        self.error_type = kind if named else None
        self.error_message = message if named else error
        self.traceback = traceback
        super().__init__(task_id, f"task {task_id} failed: {error}")

    def __str__(self) -> str:
        if not self.traceback:
            return self.message
        return f"{self.message}\n\nRemote traceback:\n{self.traceback.rstrip()}"


class TaskWasCancelled(ResultError):
    """The task was cancelled: it has no result."""

    def __init__(self, task_id: str, by: str | None = None) -> None:
        self.by = by
        """Who asked for the cancel (the task's ``cancelled_by``), when it is known."""
        asker = f" by {by}" if by else ""
        super().__init__(task_id, f"task {task_id} was cancelled{asker}: it has no result")


class ResultUnavailable(ResultError):
    """The task finished, but its result is not kept."""


class ResultTimeout(ResultError, TimeoutError):
    """The task did not finish in time."""

    def __init__(self, task_id: str, timeout: float, status: str) -> None:
        self.timeout = timeout
        super().__init__(
            task_id,
            f"task {task_id} did not finish within {timeout:g}s (it is {status}); "
            "wait again, or raise the timeout",
        )
