"""``shoal jobs``: list, show, retry, cancel and purge tasks, one by id or in bulk."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
from datetime import datetime

from shoal.backends import Backend
from shoal.core.errors import ConfigurationError, TaskNotFound
from shoal.core.models import Task, TaskStatus, utcnow

from . import bulk, options, when
from .commands import number, print_table, short, verified_backend

_STATUSES = [s.value for s in TaskStatus]
_RETRYABLE = ["dead", "cancelled", "retrying"]
_PURGEABLE = ["done", "dead", "cancelled"]


def add_actions(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def action(name: str, help: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help, description=help)
        options.add_connection(sub)
        return sub

    listing = action("list", "tasks, newest first, filtered by queue, status and task name")
    listing.add_argument("--queue", help="only tasks of this queue")
    listing.add_argument(
        "--status", action="append", choices=_STATUSES, help="only this status (repeatable)"
    )
    listing.add_argument("--task", metavar="NAME", help="only tasks of this name")
    listing.add_argument("--limit", default="50", help="at most this many (default: 50)")

    action("show", "every field of one task").add_argument("task_id", help="the task's id")
    cancel = action(
        "cancel", "cancel a task; a running one is stopped by its worker within a heartbeat"
    )
    cancel.add_argument("task_id", help="the task's id")
    cancel.add_argument("--by", help="who asks, recorded on the task (default: user@host)")

    retry = action(
        "retry",
        "queue a dead, cancelled or retrying task again with fresh attempts: one by id, or "
        "every task --status selects (with --queue, --task, --since), after a confirmation",
    )
    retry.add_argument("task_id", nargs="?", help="the task's id; omit it to retry in bulk")
    retry.add_argument(
        "--status", action="append", choices=_RETRYABLE, help="bulk: tasks in this status"
    )
    _bulk_filters(retry)
    retry.add_argument(
        "--since",
        metavar="TIME",
        help="bulk: tasks made at or after TIME: ISO 8601 (2026-12-01T08:00) or a duration "
        "ago (2h, 7d)",
    )

    purge = action(
        "purge",
        "delete finished tasks that --status and/or --older-than select (with --queue, "
        "--task), after a confirmation",
    )
    purge.add_argument(
        "--status",
        action="append",
        choices=_PURGEABLE,
        help="tasks in this status (repeatable; default with --older-than: all three)",
    )
    _bulk_filters(purge)
    purge.add_argument(
        "--older-than",
        dest="older_than",
        metavar="DURATION",
        help="tasks made more than DURATION ago (90s, 30m, 12h, 7d, 2w)",
    )
    for name, sub in actions.choices.items():
        sub.set_defaults(jobs_run=_RUNS[name])


def _bulk_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue", help="only tasks of this queue")
    parser.add_argument("--task", metavar="NAME", help="only tasks of this name")
    parser.add_argument("--yes", action="store_true", help="go ahead without asking")
    parser.add_argument(
        "--dry-run", dest="dry_run", action="store_true", help="print the count, change nothing"
    )


async def run(arguments: argparse.Namespace) -> int:
    async with verified_backend(arguments) as backend:
        code: int = await arguments.jobs_run(backend, arguments)
        return code


async def _list(backend: Backend, arguments: argparse.Namespace) -> int:
    tasks = await backend.list_tasks(
        queue=arguments.queue,
        statuses=[TaskStatus(s) for s in arguments.status or ()],
        name=arguments.task,
        limit=number("limit", arguments.limit, int),
    )
    print_table(
        ["id", "queue", "task", "status", "attempts", "run at", "last error"],
        [
            [
                t.id,
                t.queue,
                t.name,
                t.status,
                f"{t.attempts}/{t.max_attempts}",
                t.run_at.strftime("%Y-%m-%d %H:%M:%S"),
                short(t.last_error),
            ]
            for t in tasks
        ],
    )
    return 0


async def _show(backend: Backend, arguments: argparse.Namespace) -> int:
    task = await backend.get(arguments.task_id)
    if task is None:
        raise TaskNotFound(arguments.task_id)
    show(task)
    return 0


async def _cancel(backend: Backend, arguments: argparse.Namespace) -> int:
    """Cancel, and say what became of the task: 1 when it had finished already."""
    task_id = arguments.task_id
    cancelled = await backend.cancel(task_id, by=arguments.by or _asker())
    task = await backend.get(task_id)
    status = task.status if task else "gone"
    if not cancelled:
        print(f"{task_id} is {status}: finished already, nothing to cancel")
        return 1
    if status == TaskStatus.RUNNING:
        print(f"{task_id} is running: cancel requested, its worker stops it at its next heartbeat")
    else:
        print(f"{task_id} cancelled")
    return 0


def _asker() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's)
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


async def _retry(backend: Backend, arguments: argparse.Namespace) -> int:
    filters = [f"--{n}" for n in ("status", "queue", "task", "since") if getattr(arguments, n)]
    if arguments.task_id is not None:
        if filters:
            raise ConfigurationError(
                f"retry one task by id, or select tasks with filters: not both ({filters[0]})"
            )
        if await backend.retry(arguments.task_id):
            print(f"{arguments.task_id} queued again")
            return 0
        return await _unchanged(backend, arguments.task_id, "queued again")
    if not arguments.status:
        raise ConfigurationError(
            "name a task id, or select the tasks to retry with --status (dead, cancelled, "
            "retrying), e.g. shoal jobs retry --status dead --queue emails"
        )
    since = None
    if arguments.since is not None:
        since = when.moment("--since", arguments.since, utcnow())
    return await _bulk(backend, arguments, "retry", arguments.status, since=since)


async def _purge(backend: Backend, arguments: argparse.Namespace) -> int:
    if not arguments.status and arguments.older_than is None:
        raise ConfigurationError(
            "name what to purge: --status (done, dead, cancelled) and/or --older-than, "
            "e.g. shoal jobs purge --status done --older-than 7d"
        )
    until = None
    if arguments.older_than is not None:
        until = utcnow() - when.duration("--older-than", arguments.older_than)
    return await _bulk(backend, arguments, "purge", arguments.status or _PURGEABLE, until=until)


async def _bulk(
    backend: Backend,
    arguments: argparse.Namespace,
    verb: str,
    statuses: list[str],
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Select, count, confirm, then change a page at a time (:mod:`shoal.cli.bulk`)."""
    chosen = tuple(TaskStatus(s) for s in statuses)
    selection = bulk.Selection(chosen, arguments.queue, arguments.task, since, until)
    ids = await bulk.matching(backend, selection)
    if not await bulk.confirmed(len(ids), verb, yes=arguments.yes, dry_run=arguments.dry_run):
        return 0
    change = backend.retry_many if verb == "retry" else backend.purge_tasks
    changed = await bulk.apply(ids, change, verb)
    done = f"queued {changed} tasks again" if verb == "retry" else f"purged {changed} tasks"
    print(done + _skipped(len(ids) - changed))
    return 0


def _skipped(count: int) -> str:
    return (
        f" ({count} left: gone or in another state since, or a newer task holds the "
        "idempotency key)"
        if count
        else ""
    )


async def _unchanged(backend: Backend, task_id: str, verb: str) -> int:
    task = await backend.get(task_id)
    print(f"{task_id} is {task.status if task else 'gone'}: not {verb}")
    return 1


_RUNS = {
    "list": _list,
    "show": _show,
    "cancel": _cancel,
    "retry": _retry,
    "purge": _purge,
}


def show(task: Task) -> None:
    fields = {
        "id": task.id,
        "queue": task.queue,
        "task": task.name,
        "status": task.status,
        "priority": task.priority,
        "attempts": f"{task.attempts}/{task.max_attempts}",
        "run at": task.run_at.isoformat(),
        "created at": task.created_at.isoformat(),
        "finished at": task.finished_at.isoformat() if task.finished_at else "",
        "idempotency key": task.idempotency_key or "",
        "worker": task.worker_id or "",
        "lease expirations": task.lease_expirations,
        "last error": task.last_error or "",
        "cancelled by": task.cancelled_by or "",
        "metadata": json.dumps(dict(task.metadata)),
        "payload": task.payload.decode("utf-8", "backslashreplace"),
    }
    width = max(map(len, fields))
    for name, value in fields.items():
        print(f"{name:>{width}}  {value}")
    if task.last_traceback:  # the last failed attempt's, bounded by the worker
        print(f"\n{'last traceback':>{width}}")
        print(task.last_traceback.rstrip())
