"""What each subcommand does, once the arguments are parsed. Thin: the work is library calls."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from shoal.app import App, PushOptions, load_app
from shoal.backends import Backend, open_backend
from shoal.core.errors import ConfigurationError, PayloadError, ShoalError, TaskNotFound
from shoal.core.models import Task, TaskStatus
from shoal.worker import Worker, run_workers

from .options import worker_settings

_PURGEABLE = ("done", "dead", "cancelled")


def resolve_app(arguments: argparse.Namespace, required: bool = False) -> App | None:
    if not arguments.app:
        if required:
            raise ConfigurationError("name the app: --app module:attribute (or SHOAL_APP)")
        return None
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # import the user's modules as `python -m` would
    app = load_app(arguments.app)
    if arguments.backend_url:
        app.backend_url = arguments.backend_url
    return app


def resolve_backend(arguments: argparse.Namespace) -> Backend:
    app = resolve_app(arguments)
    return app.backend if app is not None else open_backend(arguments.backend_url)


async def worker(arguments: argparse.Namespace) -> int:
    app = resolve_app(arguments, required=True)
    assert app is not None
    settings = worker_settings(arguments)
    if arguments.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(int(arguments.metrics_port), addr=arguments.metrics_address)
    await app.open()
    try:
        await app.backend.verify_schema()
        workers = [Worker(app, settings) for _ in range(int(arguments.workers))]
        await run_workers(workers)
    finally:
        await app.close()
    return 0


async def enqueue(arguments: argparse.Namespace) -> int:
    app = resolve_app(arguments, required=True)
    assert app is not None
    try:
        json.loads(arguments.args)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"--args is not valid JSON: {exc}") from None
    options: PushOptions = {}
    for name in ("priority", "max_attempts"):
        if getattr(arguments, name) is not None:
            options[name] = int(getattr(arguments, name))
    if arguments.delay is not None:
        options["delay"] = float(arguments.delay)
    if arguments.idempotency_key:
        options["idempotency_key"] = arguments.idempotency_key
    async with app:
        task_id = await app.push(arguments.task, arguments.args, options)
    print(task_id)
    return 0


async def board(arguments: argparse.Namespace) -> int:
    from shoal.board import BoardSettings, credentials_from, serve  # the optional extra

    backend = resolve_backend(arguments)
    secret = os.environ.get("SHOAL_BOARD_CSRF_SECRET", "")
    try:
        port, refresh = int(arguments.board_port), float(arguments.board_refresh)
    except ValueError as exc:
        raise ConfigurationError(f"--board-port and --board-refresh are numbers: {exc}") from exc
    settings = BoardSettings(
        backend_url=backend.url, credentials=credentials_from(), host=arguments.board_host,
        port=port, refresh_seconds=refresh,
        **({"csrf_secret": secret.encode()} if secret else {}),
    )  # fmt: skip
    await serve(settings, backend)
    return 0


async def migrate(arguments: argparse.Namespace) -> int:
    async with resolve_backend(arguments) as backend:
        await backend.setup()
        await backend.verify_schema()
        print(f"schema is current on {backend.url}")
    return 0


async def check(arguments: argparse.Namespace) -> int:
    """Health as an exit code: 0 healthy, 1 not. Each failed check prints one line."""
    problems = []
    if arguments.health_file:
        try:
            modified = Path(arguments.health_file).stat().st_mtime  # noqa: ASYNC240 (one stat)
            age = time.time() - modified
            if age > float(arguments.max_age):
                problems.append(
                    f"the worker loop last ticked {age:.0f}s ago (more than {arguments.max_age}s)"
                )
        except FileNotFoundError:
            problems.append(f"no health file at {arguments.health_file}: is a worker running?")
    if not arguments.skip_backend:
        try:
            async with resolve_backend(arguments) as backend:
                await backend.verify_schema()
                health = getattr(backend, "listener_health", None)
                if health is not None and not health():
                    problems.append("the wake-up listener is down (polling continues)")
        except ShoalError as error:
            problems.append(str(error))
    for problem in problems:
        print(f"unhealthy: {problem}")
    if not problems:
        print("healthy")
    return 1 if problems else 0


async def queues(arguments: argparse.Namespace) -> int:
    async with resolve_backend(arguments) as backend:
        names = arguments.queue or await backend.queues()
        stats = await backend.stats(names)
    rows = [
        [s.queue, s.ready, s.scheduled, s.running, s.dead, _age(s.oldest_ready_age)]
        for s in stats.values()
    ]
    _print_table(["queue", "ready", "scheduled", "running", "dead", "oldest ready"], rows)
    return 0


async def jobs(arguments: argparse.Namespace) -> int:
    async with resolve_backend(arguments) as backend:
        action = arguments.jobs_action
        if action == "list":
            statuses = [TaskStatus(s) for s in arguments.status or ()]
            tasks = await backend.list_tasks(
                queue=arguments.queue, statuses=statuses, limit=int(arguments.limit)
            )
            _print_table(
                ["id", "queue", "task", "status", "attempts", "run at", "last error"],
                [
                    [
                        t.id,
                        t.queue,
                        t.name,
                        t.status,
                        f"{t.attempts}/{t.max_attempts}",
                        t.run_at.strftime("%Y-%m-%d %H:%M:%S"),
                        _short(t.last_error),
                    ]
                    for t in tasks
                ],
            )
        elif action == "show":
            task = await backend.get(arguments.task_id)
            if task is None:
                raise TaskNotFound(arguments.task_id)
            _show(task)
        elif action in ("retry", "cancel"):
            changed = await getattr(backend, action)(arguments.task_id)
            verb = "queued again" if action == "retry" else "cancelled"
            if not changed:
                task = await backend.get(arguments.task_id)
                status = task.status if task else "gone"
                print(f"{arguments.task_id} is {status}: not {verb}")
                return 1
            print(f"{arguments.task_id} {verb}")
        else:
            count = await backend.purge(
                queue=arguments.queue, statuses=[TaskStatus(s) for s in arguments.status]
            )
            print(f"purged {count} tasks")
    return 0


def _show(task: Task) -> None:
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
        "metadata": json.dumps(dict(task.metadata)),
        "payload": task.payload.decode("utf-8", "backslashreplace"),
    }
    width = max(map(len, fields))
    for name, value in fields.items():
        print(f"{name:>{width}}  {value}")


def _print_table(header: list[str], rows: list[list[object]]) -> None:
    if not rows:
        print("(nothing)")
        return
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for number, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if number == 0:
            print("  ".join("-" * w for w in widths))


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.1f}h"


def _short(text: str | None, limit: int = 60) -> str:
    if not text:
        return ""
    line = text.splitlines()[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"
