"""What each subcommand does, once the arguments are parsed. Thin: the work is library calls."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

from shoal.app import App, PushOptions, load_app, periodic
from shoal.backends import Backend, open_backend
from shoal.core.errors import ConfigurationError, PayloadError, ShoalError
from shoal.core.models import utcnow
from shoal.core.schedule_records import ScheduleState
from shoal.worker import Worker, health, run_workers, startup

from .options import worker_settings

_N = TypeVar("_N", int, float)


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
    count = number("workers", arguments.workers, int)
    stopping = startup.stop_on_signals()  # before anything slow: SIGTERM now exits 0
    if arguments.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(
            number("metrics_port", arguments.metrics_port, int), addr=arguments.metrics_address
        )
    state = health.HealthState(stale_after=settings.lease_seconds)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(app.close)
        if settings.health_port is not None:
            await stack.enter_async_context(
                health.serve_health(
                    arguments.health_address,
                    settings.health_port,
                    state,
                    app.backend,
                    every=settings.heartbeat_interval,
                )
            )
        state.backend = await startup.wait_until_ready(app.backend, settings, stopping)
        if state.backend is None:
            return 0
        workers = [Worker(app, settings) for _ in range(count)]
        state.workers = [w.progress for w in workers]
        # A signal handled by the start-up's handler after this point still stops them.
        late = asyncio.create_task(_stop_when(stopping, workers))
        try:
            await run_workers(workers)
        finally:
            late.cancel()
    if any(worker.abandoned for worker in workers):
        # Handlers that ignored their cancellation run on, left to their leases; the event
        # loop's clean-up (and the interpreter, for threads) would wait for them.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


async def _stop_when(stopping: asyncio.Event, workers: list[Worker]) -> None:
    await stopping.wait()
    for running in workers:
        if running.stop_reason is None:
            running.stop("received a signal while starting")


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
            options[name] = number(name, getattr(arguments, name), int)
    if arguments.delay is not None:
        options["delay"] = number("delay", arguments.delay, float)
    if arguments.idempotency_key:
        options["idempotency_key"] = arguments.idempotency_key
    async with app:
        handle = await app.push(arguments.task, arguments.args, options)
    print(handle.id)
    return 0


def number(name: str, raw: str, kind: type[_N]) -> _N:
    """A flag's text as a number, or a one-line error naming the flag."""
    try:
        return kind(raw)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise ConfigurationError(
            f"--{name.replace('_', '-')} must be {noun}, not {raw!r}"
        ) from None


async def board(arguments: argparse.Namespace) -> int:
    from shoal.board import BoardSettings, credentials_from, serve  # the optional extra

    backend = resolve_backend(arguments)
    secret = os.environ.get("SHOAL_BOARD_CSRF_SECRET", "")
    port = number("board_port", arguments.board_port, int)
    refresh = number("board_refresh", arguments.board_refresh, float)
    settings = BoardSettings(
        backend_url=backend.url, credentials=credentials_from(), host=arguments.board_host,
        port=port, refresh_seconds=refresh,
        **({"csrf_secret": secret.encode()} if secret else {}),
    )  # fmt: skip
    await serve(settings, backend)
    return 0


async def migrate(arguments: argparse.Namespace) -> int:
    app = resolve_app(arguments)
    async with resolve_backend(arguments) as backend:
        await backend.setup()
        await backend.verify_schema()
        print(f"schema is current on {backend.url}")
        if app is not None:  # its schedules too, each with its next tick materialised
            records = await periodic.register(app)
            active = sum(r.state is ScheduleState.ACTIVE for r in records)
            print(f"{active} schedules of app {app.name!r} active, {len(records) - active} not")
    return 0


async def check(arguments: argparse.Namespace) -> int:
    """Health as an exit code: 0 healthy (degraded too: it serves), 1 not. The backend's
    details print one per line, then each warning and each failed check."""
    problems = []
    if arguments.health_file:
        try:
            modified = Path(arguments.health_file).stat().st_mtime  # noqa: ASYNC240 (one stat)
            age = time.time() - modified
            if age > number("max_age", arguments.max_age, float):
                problems.append(
                    f"the worker loop last ticked {age:.0f}s ago (more than {arguments.max_age}s)"
                )
        except FileNotFoundError:
            problems.append(f"no health file at {arguments.health_file}: is a worker running?")
    warnings: tuple[str, ...] = ()
    if not arguments.skip_backend:
        try:
            async with resolve_backend(arguments) as backend:
                found = await backend.health()
            warnings = found.warnings
            for name, value in found.details.items():
                print(f"{name}: {value}")
        except ShoalError as error:
            problems.append(str(error))
    for warning in warnings:
        print(f"degraded: {warning}")
    for problem in problems:
        print(f"unhealthy: {problem}")
    if not problems:
        print("degraded" if warnings else "healthy")
    return 1 if problems else 0


@contextlib.asynccontextmanager
async def verified_backend(arguments: argparse.Namespace) -> AsyncIterator[Backend]:
    """The backend, open, its schema verified first: a read of an unmigrated or vanished
    dataset says so instead of printing an empty table."""
    async with resolve_backend(arguments) as backend:
        await backend.verify_schema()
        yield backend


async def queues(arguments: argparse.Namespace) -> int:
    async with verified_backend(arguments) as backend:
        names = arguments.queue or await backend.queues()
        stats = await backend.stats(names)
    rows = [
        [s.queue, s.ready, s.scheduled, s.running, s.dead, _age(s.oldest_ready_age), s.held_back]
        for s in stats.values()
    ]
    header = ["queue", "ready", "scheduled", "running", "dead", "oldest ready", "held back"]
    print_table(header, rows)
    return 0


async def workers(arguments: argparse.Namespace) -> int:
    async with verified_backend(arguments) as backend:
        found = await backend.workers()
    now = utcnow()
    print_table(
        ["host", "pid", "queues", "in flight", "last heartbeat", "version", "id"],
        [
            [
                w.host,
                w.pid,
                ",".join(w.queues),
                f"{w.in_flight}/{w.concurrency}",
                f"{_age((now - w.last_seen).total_seconds())} ago",
                w.version or "-",
                w.id,
            ]
            for w in sorted(found, key=lambda w: (w.host, w.id))
        ],
    )
    return 0


def print_table(header: list[str], rows: list[list[object]]) -> None:
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


def short(text: str | None, limit: int = 60) -> str:
    if not text:
        return ""
    line = text.splitlines()[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"
