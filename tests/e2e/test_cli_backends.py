"""Every ``shoal`` command, run as a real subprocess, on every backend with a server.

Matrix: SQLite, PostgreSQL and Redis (:data:`tests.e2e.conftest.BACKENDS`) by every
subcommand: migrate, check, enqueue, queues, jobs list/show/cancel/retry/purge, worker, demo.
The CLI reaches a backend only through the contract, so a command that works on one backend
and breaks on another (as ``shoal check`` once did on PostgreSQL) fails here.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.e2e.conftest import BACKENDS, shoal

APP = "tests.e2e.sample_app:app"
WORK = "tests.e2e.sample_app.work"


def run(url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "SHOAL_BACKEND_URL": url, "SHOAL_APP": APP}
    return shoal(*arguments, env={**environment, "SHOAL_TEST_LOG": os.devnull})


def ok(url: str, *arguments: str) -> list[str]:
    """Run a command that must succeed; its output lines."""
    result = run(url, *arguments)
    assert result.returncode == 0, f"{arguments}: {result.stdout}{result.stderr}"
    return result.stdout.splitlines()


@pytest.fixture(params=sorted(BACKENDS))
def url(request: pytest.FixtureRequest) -> str:
    found: str = request.getfixturevalue(BACKENDS[request.param])
    return found


def test_every_command_on_every_backend(url: str) -> None:
    unmigrated = run(url, "check")
    assert unmigrated.returncode == 1 and "shoal migrate" in unmigrated.stdout

    assert ok(url, "migrate")[-1].startswith("schema is current on ")
    assert ok(url, "check")[-1] == "healthy"

    [later] = ok(url, "enqueue", WORK, "--args", '{"seconds": 0.25}', "--delay", "600")
    [now] = ok(url, "enqueue", WORK, "--priority", "5", "--max-attempts", "2")
    table = ok(url, "queues")
    assert table[2].split()[:5] == ["e2e", "1", "1", "0", "0"]

    listed = "\n".join(ok(url, "jobs", "list", "--queue", "e2e", "--limit", "10"))
    assert later in listed and now in listed
    shown = "\n".join(ok(url, "jobs", "show", later))
    assert '{"seconds":0.25}' in shown and "queued" in shown
    assert ok(url, "jobs", "cancel", later) == [f"{later} cancelled"]
    assert ok(url, "jobs", "retry", later) == [f"{later} queued again"]
    assert ok(url, "jobs", "cancel", later) == [f"{later} cancelled"]
    refused = run(url, "jobs", "cancel", later)
    assert refused.returncode == 1 and "is cancelled: finished already" in refused.stdout

    worker = run(url, "worker", APP, "--max-tasks", "1", "--poll-interval", "0.1")
    assert worker.returncode == 0, worker.stderr
    done = "\n".join(ok(url, "jobs", "list", "--status", "done"))
    assert now in done

    purge = ("jobs", "purge", "--status", "done", "--status", "cancelled", "--yes")
    assert ok(url, *purge) == ["2 tasks match", "purged 2 tasks"]
    assert ok(url, "queues") == ["(nothing)"]


def test_demo_on_every_backend(url: str) -> None:
    lines = ok(url, "demo", "--tasks", "40", "--backend-url", url)
    assert any("39 done, 1 dead" in line for line in lines), lines


def test_check_prints_the_backends_own_details(url: str) -> None:
    ok(url, "migrate")
    lines = ok(url, "check")
    expected = {"sqlite": None, "postgresql": "listener: idle", "redis": "persistence: aof"}
    detail = expected[url.split(":", 1)[0]]
    assert lines[-1] == "healthy"
    assert detail is None or detail in lines, lines
