"""shoal: background jobs for Python that run the same on a laptop and on Kubernetes.

Tasks may run more than once (a worker can die after the work but before recording it):
make them idempotent. See the README for a tour.
"""

from shoal.app import App, Event
from shoal.app.handles import TaskHandle
from shoal.backends import OnConflict
from shoal.core.context import Context
from shoal.core.current import TaskContextFilter
from shoal.core.errors import (
    IdempotencyConflict,
    PermanentFailure,
    ResultTimeout,
    Retry,
    ShoalError,
    TaskFailed,
    TaskWasCancelled,
)
from shoal.core.models import Task, TaskStatus
from shoal.core.retention import Retention
from shoal.core.retry import RetryPolicy
from shoal.core.settings import WorkerSettings
from shoal.worker import Worker, run_workers

__all__ = [
    "App",
    "Context",
    "Event",
    "IdempotencyConflict",
    "OnConflict",
    "PermanentFailure",
    "ResultTimeout",
    "Retention",
    "Retry",
    "RetryPolicy",
    "ShoalError",
    "Task",
    "TaskContextFilter",
    "TaskFailed",
    "TaskHandle",
    "TaskStatus",
    "TaskWasCancelled",
    "Worker",
    "WorkerSettings",
    "run_workers",
]
