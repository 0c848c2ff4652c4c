"""The ``shoal`` command: parse arguments, build settings, call one library function.

An error prints one line; the exit code says which kind it was (:data:`EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence

from shoal.core.errors import BackendError, ShoalError
from shoal.core.version import VERSION

from . import commands, demo, jobs, logs, options, reference

Command = Callable[[argparse.Namespace], Awaitable[int]]

EXIT_CODES = {
    0: "done; a worker also after SIGTERM/SIGINT, even one that arrives while it starts",
    1: "`shoal check`: unhealthy; `jobs retry`: the task was in another state; "
    "`jobs cancel`: it had finished",
    2: "wrong input: arguments, settings, the app, a task name or id; a bulk change "
    "without a terminal to confirm it and without --yes",
    3: "the backend cannot be used: unreachable (a worker tries for --startup-timeout "
    "first), a refused TLS certificate, schema missing (`shoal migrate`), data lost, or "
    "not durable with --require-persistence",
    130: "interrupted (SIGINT) outside a worker",
}
"""What ``shoal`` exits with; ``shoal --help`` prints this table."""

_EPILOG = f"""\
Every flag can also be set by its SHOAL_* environment variable, shown in each --help.
Start with `shoal demo`; `shoal <command> --help` tells more.

exit codes:
{chr(10).join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items())}"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoal",
        description="Background jobs for Python, on a laptop and on Kubernetes.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"shoal {VERSION}")
    _global_options(parser, given_only=False)
    commands_parser = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, run: Command) -> argparse.ArgumentParser:
        sub = commands_parser.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    worker = command(
        "worker", "run a worker for an app's tasks until SIGTERM/SIGINT", commands.worker
    )
    worker.add_argument("app", metavar="MODULE:ATTR", help="the App, e.g. myproject.tasks:app")
    options.add(worker, "backend_url", "override the app's backend URL", shown="the app's URL")
    options.add(worker, "workers", "workers in this process, sharing one backend", 1)
    options.add(worker, "metrics_port", "serve Prometheus metrics on this port")
    options.add(worker, "metrics_address", "address for the metrics server", "0.0.0.0")
    options.add(worker, "health_address", "address for the --health-port server", "0.0.0.0")
    options.add_worker_settings(worker)

    enqueue = command("enqueue", "push one task by name; prints its id", commands.enqueue)
    enqueue.add_argument("task", help="the task's name, e.g. myproject.tasks.send_email")
    options.add_connection(enqueue)
    enqueue.add_argument("--args", default="{}", help="keyword arguments as a JSON object")
    enqueue.add_argument("--priority", help="higher runs first")
    enqueue.add_argument("--delay", help="seconds before the task may run")
    enqueue.add_argument("--max-attempts", dest="max_attempts", help="attempts in all")
    enqueue.add_argument(
        "--idempotency-key",
        dest="idempotency_key",
        help="refuse a second unfinished task with this key",
    )

    queues = command(
        "queues", "a table of every queue: ready, scheduled, running, dead", commands.queues
    )
    options.add_connection(queues)
    queues.add_argument("--queue", action="append", help="only this queue (repeatable)")

    tasks = command("jobs", "list, show, retry, cancel or purge tasks", jobs.run)
    jobs.add_actions(tasks.add_subparsers(dest="jobs_action", required=True, metavar="ACTION"))

    workers = command(
        "workers",
        "a table of registered workers: host, queues, in flight, last heartbeat, version",
        commands.workers,
    )
    options.add_connection(workers)

    migrate = command("migrate", "create or upgrade the backend's schema", commands.migrate)
    options.add_connection(migrate)

    check = command(
        "check",
        "exit 0 while the backend serves (healthy, or degraded with warnings), 1 when not",
        commands.check,
    )
    options.add_connection(check)
    options.add(check, "health_file", "also require a worker's health file to be fresh")
    options.add(check, "max_age", "seconds after which the health file is stale", 60)
    check.add_argument(
        "--skip-backend",
        action="store_true",
        help="check only the health file (a liveness probe that must not "
        "fail when the database does)",
    )

    board = command(
        "board",
        "serve the web board and its JSON API over a backend (needs shoal[board]); "
        "credentials come from SHOAL_BOARD_ADMIN / SHOAL_BOARD_VIEWER (user:password) or "
        "SHOAL_BOARD_ADMIN_TOKEN / SHOAL_BOARD_VIEWER_TOKEN, never from flags",
        commands.board,
    )
    options.add_connection(board)
    options.add(board, "board_host", "address to listen on", "127.0.0.1")
    options.add(board, "board_port", "port to listen on", 8080)
    options.add(board, "board_refresh", "seconds between a page's live updates (at most 2)", 2)

    config = command(
        "config",
        "the worker's settings as this environment resolves them, or (--markdown) the "
        "reference table of every worker flag and variable that the README holds",
        reference.config,
    )
    config.add_argument(
        "--markdown", action="store_true", help="print the reference table, not the values"
    )

    sample = command(
        "demo", "run sample tasks on the embedded backend, with live progress", demo.run
    )
    sample.add_argument("--tasks", type=int, default=1000, help="how many tasks to push")
    sample.add_argument(
        "--concurrency", type=int, default=16, help="tasks run at once (default: %(default)s)"
    )
    sample.add_argument(
        "--backend-url",
        default="sqlite:///shoal-demo.db",
        help="a fresh database is made at this URL (default: %(default)s)",
    )
    for sub in reference.subparsers(parser):
        _global_options(sub, given_only=True)
    return parser


def _global_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, given_only: bool
) -> None:
    """Options of every command, accepted before or after it: after it (``given_only``)
    they override the top-level parser's value only when given."""
    if given_only:
        parser = parser.add_argument_group("global options (also before the command)")
    options.add(
        parser,
        "log_format",
        "log lines as text or json",
        "text",
        choices=["text", "json"],
        given_only=given_only,
    )
    options.add(
        parser,
        "log_level",
        "least severe log level shown",
        "info",
        choices=["debug", "info", "warning", "error"],
        given_only=given_only,
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    logs.configure(arguments.log_format, arguments.log_level)
    try:
        code: int = asyncio.run(arguments.run(arguments))
    except BackendError as error:
        print(f"shoal: error: {error}", file=sys.stderr)
        code = 3
    except ShoalError as error:
        print(f"shoal: error: {error}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    if any(not t.daemon for t in others):
        # A plain-def task outlived the shutdown timeout in its thread: its lease was
        # released already, so exit without waiting for it. Daemon threads (the sync API's
        # portal, in a program that calls main() after pushing) hold no exit up.
        sys.stderr.flush()
        os._exit(code)
    return code
