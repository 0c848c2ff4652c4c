"""The ``shoal`` command on a SQLite file: each subcommand, its help, and its errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shoal.cli import build_parser, main

from .conftest import shoal

APP = "tests.e2e.sample_app:app"


def test_every_worker_flag_names_its_environment_twin() -> None:
    worker = build_parser()._subparsers._group_actions[0].choices["worker"]  # type: ignore[union-attr,index]
    help_text = worker.format_help()
    for flag in (
        "concurrency",
        "shutdown_timeout",
        "queues",
        "metrics_port",
        "backend_url",
        "lease_seconds",
        "max_tasks",
        "health_file",
    ):
        assert f"--{flag.replace('_', '-')}" in help_text
        assert f"SHOAL_{flag.upper()}" in help_text


def test_migrate_enqueue_inspect_and_manage(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--backend-url", sqlite_url]) == 0
    assert (
        main(
            [
                "enqueue",
                "tests.e2e.sample_app.work",
                "--app",
                APP,
                "--backend-url",
                sqlite_url,
                "--args",
                '{"seconds": 0.5}',
                "--delay",
                "600",
            ]
        )
        == 0
    )
    task_id = capsys.readouterr().out.splitlines()[-1]

    assert main(["queues", "--backend-url", sqlite_url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "queue", "ready", "scheduled", "running", "dead", "oldest", "ready", "held", "back"
    ]  # fmt: skip
    assert table[2].split()[:5] == ["e2e", "0", "1", "0", "0"]

    assert main(["jobs", "show", task_id, "--backend-url", sqlite_url]) == 0
    assert '{"seconds":0.5}' in capsys.readouterr().out
    assert main(["jobs", "cancel", task_id, "--backend-url", sqlite_url]) == 0
    assert main(["jobs", "list", "--status", "cancelled", "--backend-url", sqlite_url]) == 0
    assert task_id in capsys.readouterr().out
    assert main(["jobs", "retry", task_id, "--backend-url", sqlite_url]) == 0
    assert main(["jobs", "cancel", task_id, "--backend-url", sqlite_url]) == 0
    assert (
        main(["jobs", "purge", "--status", "cancelled", "--yes", "--backend-url", sqlite_url]) == 0
    )
    assert "purged 1 tasks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["enqueue", "tests.e2e.sample_app.work", "--app", APP, "--args", "{oops"],
            "--args is not valid JSON",
        ),
        (["enqueue", "no.such.task", "--app", APP], "no task named 'no.such.task'"),
        (
            ["enqueue", "tests.e2e.sample_app.work", "--app", APP, "--args", '{"seconds": "x"}'],
            "field 'seconds'",
        ),
        (["enqueue", "x", "--app", "no_such_module:app"], "cannot import 'no_such_module'"),
        (["queues", "--backend-url", "mysql://root:hunter2@db/x"], "no backend serves"),
        (["jobs", "show", "nope"], "no task has the id 'nope'"),
        (["worker", APP, "--concurrency", "lots"], "SHOAL_CONCURRENCY / --concurrency: input"),
        (
            ["enqueue", "tests.e2e.sample_app.work", "--app", APP, "--delay", "soon"],
            "--delay must be a number, not 'soon'",
        ),
        (
            ["enqueue", "tests.e2e.sample_app.work", "--app", APP, "--priority", "high"],
            "--priority must be a whole number, not 'high'",
        ),
        (["jobs", "list", "--limit", "many"], "--limit must be a whole number, not 'many'"),
    ],
)
def test_wrong_input_prints_one_line_and_exits_2(
    arguments: list[str], message: str, sqlite_url: str
) -> None:
    environment = {"SHOAL_BACKEND_URL": sqlite_url, "PATH": "/usr/bin:/bin"}
    shoal("migrate", env=environment)
    result = shoal(*arguments, env=environment)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert message in result.stderr
    assert "hunter2" not in result.stderr


def test_an_app_that_raises_while_importing_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken_tasks.py").write_text(
        "from shoal import App\napp = App()\nsettings = {}['missing']\n"
    )
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)}
    result = shoal("enqueue", "x", "--app", "broken_tasks:app", env=environment)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "importing 'broken_tasks' for 'broken_tasks:app' raised KeyError: 'missing'" in (
        result.stderr
    )
    assert f"{tmp_path / 'broken_tasks.py'}:3" in result.stderr


def test_commands_that_read_never_create_a_sqlite_database(tmp_path: Path) -> None:
    typo = tmp_path / "no" / "such" / "dir" / "x.db"
    for command in (["queues"], ["jobs", "list"], ["jobs", "purge", "--status", "done"]):
        result = shoal(*command, "--backend-url", f"sqlite:///{typo}")
        assert result.returncode == 3, result.stdout + result.stderr
        assert "the database file does not exist; run `shoal migrate`" in result.stderr
        assert result.stderr.count("\n") == 1
    checked = shoal("check", "--backend-url", f"sqlite:///{typo}")
    assert checked.returncode == 1 and "the database file does not exist" in checked.stdout
    assert not (tmp_path / "no").exists()
    assert shoal("migrate", "--backend-url", f"sqlite:///{typo}").returncode == 0
    assert typo.exists()


def test_check_is_a_probe(sqlite_url: str, tmp_path: Path) -> None:
    fresh = f"sqlite:///{tmp_path / 'unmigrated.db'}"
    unmigrated = shoal("check", "--backend-url", fresh)
    assert unmigrated.returncode == 1
    assert "run `shoal migrate`" in unmigrated.stdout
    shoal("migrate", "--backend-url", sqlite_url)
    assert shoal("check", "--backend-url", sqlite_url).returncode == 0
    stale = shoal("check", "--skip-backend", "--health-file", str(tmp_path / "absent"))
    assert stale.returncode == 1 and "is a worker running?" in stale.stdout


def test_demo_runs_sample_tasks_to_the_end(tmp_path: Path) -> None:
    result = shoal("demo", "--tasks", "120", "--backend-url", f"sqlite:///{tmp_path / 'demo.db'}")
    assert result.returncode == 0, result.stderr
    assert "119 done, 1 dead" in result.stdout
    assert "field 'image_id'" in result.stdout


def test_main_returns_while_other_threads_live(tmp_path: Path) -> None:
    """``main`` returns its code, whatever threads the process has (the sync producers'
    portal, a thread pool an open SQLite backend keeps): ending the process there ended a
    test session, or a program embedding the CLI. Only ``shoal worker`` ends its process
    early, when a handler outlived the drain in its thread."""
    program = textwrap.dedent(
        f"""
        import threading
        from concurrent.futures import ThreadPoolExecutor
        from shoal.cli import main

        threading.Thread(target=threading.Event().wait, daemon=True).start()
        ThreadPoolExecutor(1).submit(print, "a pool thread stays, idle").result()
        code = main(["migrate", "--backend-url", "sqlite:///{tmp_path}/tasks.db"])
        print("returned", code)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.splitlines()[-1:] == ["returned 0"], done.stderr
