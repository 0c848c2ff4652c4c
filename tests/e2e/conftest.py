"""Worker processes run through the real CLI, for tests that send them signals.

The ``workers`` fixture is parametrised over the backends named in :data:`BACKENDS`: every
test that uses it runs once per backend, on a fresh, migrated database of its own.
"""

from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shoal.app import App
from shoal.core.models import TaskStatus
from tests.e2e import sample_app

ROOT = Path(__file__).resolve().parents[2]

BACKENDS = {
    "sqlite": "sqlite_url",
    "postgres": "postgres_url",
    "redis": "redis_url",
}
"""The backends worker processes are tested on: a name, and the fixture (tests/servers/)
giving a fresh URL for each test. Adding a backend is one line here."""


class Workers:
    """Starts ``shoal worker tests.e2e.sample_app:app`` processes and reads what they ran."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log
        self.processes: list[subprocess.Popen[bytes]] = []
        self.outputs: dict[int, Path] = {}

    def start(self, *flags: str, **environment: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "SHOAL_BACKEND_URL": self.url,
            "SHOAL_TEST_LOG": str(self.log),
            "SHOAL_POLL_INTERVAL": "0.1",
            "SHOAL_REAP_INTERVAL": "0.2",
            **environment,
        }
        output = self.log.with_name(f"worker-{len(self.processes)}.out")
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "shoal", "worker", "tests.e2e.sample_app:app", *flags],
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        self.outputs[process.pid] = output
        return process

    def output(self, process: subprocess.Popen[bytes]) -> str:
        """What the process printed (its log lines)."""
        return self.outputs[process.pid].read_text()

    def events(self) -> list[tuple[str, str, int, int, float]]:
        """(event, task id, attempt, pid, time) for every line the handlers wrote."""
        if not self.log.exists():
            return []
        rows = []
        text = self.log.read_text()
        # A line being appended right now may be read half written: leave it for next time.
        complete = text[: text.rfind("\n") + 1]
        for line in complete.splitlines():
            event, task_id, attempt, pid, when = line.split()
            rows.append((event, task_id, int(attempt), int(pid), float(when)))
        return rows

    def count(self, event: str) -> collections.Counter[str]:
        return collections.Counter(row[1] for row in self.events() if row[0] == event)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.05)


def push(url: str, calls: list[dict[str, float]], task: str = "work") -> list[str]:
    async def run() -> list[str]:
        app = App(url)
        app.tasks = sample_app.app.tasks
        async with app:
            definition = app.tasks[f"tests.e2e.sample_app.{task}"]
            return await app.push_many([definition.configure().prepare(**c) for c in calls])

    return asyncio.run(run())


def statuses(url: str, ids: list[str]) -> dict[str, tuple[TaskStatus, int]]:
    async def run() -> dict[str, tuple[TaskStatus, int]]:
        async with App(url) as app:
            found = {}
            for task_id in ids:
                task = await app.backend.get(task_id)
                assert task is not None
                found[task_id] = (task.status, task.attempts)
            return found

    return asyncio.run(run())


def shoal(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``shoal`` command from this checkout, as a user would; ``env`` replaces the
    environment when given."""
    return subprocess.run(
        [sys.executable, "-m", "shoal", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def migrate(url: str) -> None:
    """Create the backend's schema through the CLI, as an operator would before a deploy."""
    subprocess.run(
        [sys.executable, "-m", "shoal", "migrate", "--backend-url", url],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture(params=sorted(BACKENDS))
def workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workers]:
    """Worker processes on a fresh, migrated database of the backend named by the param."""
    url: str = request.getfixturevalue(BACKENDS[request.param])
    migrate(url)
    started = Workers(url, tmp_path / "events.log")
    yield started
    started.stop_all()


# The operator and its CRDs on the test cluster, shared with tests/k8s.
from tests.k8s.conftest import crds, operator  # noqa: E402, F401
