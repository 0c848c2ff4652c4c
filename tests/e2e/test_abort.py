"""Cancelling a running task through the CLI while a worker process runs it.

Matrix: the ``workers`` fixture (SQLite, PostgreSQL, Redis) times an ``async def`` handler
(cancelled outright) and a plain function (sees ``Context.cancel_requested``).
"""

from __future__ import annotations

import time

import pytest

from shoal.core.models import TaskStatus
from tests.e2e.conftest import Workers, push, shoal, statuses, wait_for

LEASE_SECONDS = 6.0
"""Heartbeats every second: a cancel must land within about that, well before the lease
could expire (so it is the heartbeat that carries it, not a reap)."""


@pytest.mark.parametrize("task", ["work", "patient"])
def test_a_running_task_is_stopped_within_a_heartbeat_and_ends_cancelled(
    workers: Workers, task: str
) -> None:
    worker = workers.start("--concurrency", "2", SHOAL_LEASE_SECONDS=str(LEASE_SECONDS))
    [task_id] = push(workers.url, [{"seconds": 120.0}], task=task)
    wait_for(lambda: workers.count("start")[task_id] == 1, what="the task to start")

    cancel = shoal("jobs", "cancel", task_id, "--by", "ann@laptop", "--backend-url", workers.url)
    assert cancel.returncode == 0, cancel.stderr
    assert "cancel requested" in cancel.stdout
    asked = time.monotonic()  # once asked: the CLI's own start is not the worker's doing
    wait_for(
        lambda: statuses(workers.url, [task_id])[task_id][0] is TaskStatus.CANCELLED,
        timeout=30,
        what="the task to end cancelled",
    )
    took = time.monotonic() - asked
    assert took < LEASE_SECONDS, f"the cancel took {took:.1f}s: longer than a lease"
    assert workers.count("end")[task_id] == 0  # stopped, not run to its end
    if task == "patient":
        assert workers.count("stopping")[task_id] == 1

    shown = shoal("jobs", "show", task_id, "--backend-url", workers.url)
    assert "cancelled by  ann@laptop" in shown.stdout
    again = shoal("jobs", "cancel", task_id, "--backend-url", workers.url)
    assert again.returncode == 1
    assert "finished already" in again.stdout

    # The worker goes on with other work.
    assert worker.poll() is None, workers.output(worker)
    [next_id] = push(workers.url, [{"seconds": 0.0}])
    wait_for(lambda: workers.count("end")[next_id] == 1, what="the next task to run")
    assert "task cancelled by ann@laptop" in workers.output(worker)
