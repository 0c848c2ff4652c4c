"""``shoal schedules``: list the schedules in the backend; pause, resume or trigger one."""

from __future__ import annotations

import argparse
from datetime import datetime

from shoal.app import periodic
from shoal.cli.commands import print_table, resolve_app, verified_backend
from shoal.core.errors import ConfigurationError
from shoal.core.schedule_records import ScheduleRecord, ScheduleState

ACTIONS = {
    "list": "every schedule: its state, last run and next tick (the default)",
    "pause": "stop a schedule's ticks from running until it is resumed",
    "resume": "run a paused schedule again from its next tick after now (needs --app)",
    "trigger": "run a schedule's task once, now, outside its chain (needs --app)",
}


def add_parser(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "action",
        nargs="?",
        default="list",
        choices=list(ACTIONS),
        help="; ".join(f"{action}: {what}" for action, what in ACTIONS.items()),
    )
    command.add_argument("name", nargs="?", help="the schedule (for pause, resume, trigger)")
    command.add_argument("--all-apps", action="store_true", help="list every app's schedules")


async def schedules(arguments: argparse.Namespace) -> int:
    action = arguments.action
    if action != "list" and not arguments.name:
        raise ConfigurationError(f"name the schedule: shoal schedules {action} NAME")
    if action in ("resume", "trigger"):
        app = resolve_app(arguments, required=True)
        assert app is not None
        async with verified_backend(arguments):
            if action == "resume":
                record = await periodic.resume(app, arguments.name)
                print(f"{record.name} {record.state}, next tick {_when(record.next_tick_at)}")
            else:
                task_id = await periodic.trigger(app, arguments.name)
                print(f"{arguments.name} triggered: task {task_id}")
        return 0
    app = resolve_app(arguments)
    async with verified_backend(arguments) as backend:
        if action == "pause":
            record = await backend.pause_schedule(arguments.name, True)
            print(f"{record.name} {record.state}")
            return 0 if record.state is ScheduleState.PAUSED else 1
        scope = None if arguments.all_apps or app is None else app.name
        records = await backend.schedules(scope)
    print_table(
        ["schedule", "app", "task", "queue", "cadence", "state", "last run", "next tick"],
        [
            [r.name, r.app, r.task, r.queue, r.cadence, r.state, _when(r.last_run_at), _next(r)]
            for r in records
        ],
    )
    return 0


def _next(record: ScheduleRecord) -> str:
    if record.state is not ScheduleState.ACTIVE:
        return "-"
    if not record.pending:
        return "none pending: a worker's start or `shoal migrate --app` repairs it"
    return _when(record.next_tick_at)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")
