"""A backend from another distribution, end to end, through the real entry-point machinery.

The distribution is ``tests/plugin_backend/``: a JSON-file backend whose ``pyproject.toml``
registers the ``example`` scheme. The ``example_url`` fixture writes that distribution's
metadata onto ``sys.path`` as pip would (``tests/distributions.py``), so ``open_backend``
finds it through ``importlib.metadata``; the contract suite then runs over it unchanged, and
a ``shoal worker`` process, finding it the same way, runs tasks through it.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tomllib
from pathlib import Path

import pytest

from shoal.app import App
from shoal.backends import open_backend
from shoal.core.models import TaskStatus
from shoal.testing.contract import BackendContract
from tests.distributions import write_distribution
from tests.e2e import sample_app

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "tests" / "plugin_backend"
GUIDE = ROOT / "docs" / "backends.md"


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The example distribution installed: its metadata and its module on ``sys.path``.

    Returns the ``PYTHONPATH`` that does the same for processes started by the test.
    """
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    site = tmp_path / "site"
    write_distribution(site, project["name"], project["version"], project["entry-points"])
    monkeypatch.syspath_prepend(PLUGIN)
    monkeypatch.syspath_prepend(site)
    inherited = os.environ.get("PYTHONPATH")
    return os.pathsep.join([str(site), str(PLUGIN), *([inherited] if inherited else [])])


@pytest.fixture
def example_url(plugin_path: str, tmp_path: Path) -> str:
    return f"example:///{tmp_path}/tasks.json"


def test_open_backend_finds_the_plugin_by_its_scheme(example_url: str) -> None:
    backend = open_backend(example_url)
    plugin = sys.modules["shoal_example_backend"]
    assert type(backend) is plugin.JsonFileBackend
    assert backend.url == example_url


class TestExampleBackend(BackendContract):
    """Every case of the contract, on the example plugin backend."""

    @pytest.fixture
    def backend_url(self, example_url: str) -> str:
        return example_url


async def test_the_guides_test_file_runs_the_suite_in_a_project_of_its_own(
    plugin_path: str, tmp_path: Path
) -> None:
    """The settings and test file docs/backends.md gives, run by pytest in a folder of their
    own (no conftest of shoal's, only the plugin installed), pass every case of the suite."""
    section = GUIDE.read_text().split("## Running the contract suite")[1]
    settings = section.split("```toml\n")[1].split("```")[0]
    test_file = section.split("```python\n")[1].split("```")[0]
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(settings)
    (project / "test_mine.py").write_text(test_file.replace("mine://", "example://"))
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"),
        cwd=project,
        env={**os.environ, "PYTHONPATH": plugin_path},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(120):
        output, _ = await process.communicate()
    cases = [name for name in vars(TestExampleBackend) if name.startswith("test_")]
    assert process.returncode == 0, output.decode()
    summary = output.decode().splitlines()[-1]
    passed = re.fullmatch(r"(\d+) passed in [\d.]+s( \([\d:]+\))?", summary)  # past 60 s: (h:mm:ss)
    assert passed is not None, summary  # nothing failed, skipped or errored
    assert int(passed[1]) >= len(cases)  # every case ran (parametrised ones more than once)


async def shoal(*arguments: str, plugin_path: str, **environment: str) -> tuple[int, str]:
    """Run the real CLI in a process of its own; its exit code and what it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shoal",
        *arguments,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": plugin_path, **environment},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        output, _ = await process.communicate()
    return await process.wait(), output.decode()


async def test_a_worker_process_runs_tasks_through_the_plugin(
    example_url: str, plugin_path: str, tmp_path: Path
) -> None:
    code, output = await shoal("migrate", "--backend-url", example_url, plugin_path=plugin_path)
    assert code == 0, output
    app = App(example_url)
    app.tasks = sample_app.app.tasks
    async with app:
        work = app.tasks["tests.e2e.sample_app.work"]
        ids = await app.push_many([work.configure().prepare() for _ in range(3)])

    log = tmp_path / "ran.log"
    code, output = await shoal(
        "worker",
        "tests.e2e.sample_app:app",
        "--backend-url",
        example_url,
        "--max-tasks",
        "3",
        plugin_path=plugin_path,
        SHOAL_TEST_LOG=str(log),
    )
    assert code == 0, output
    ended = sorted(
        line.split()[1] for line in log.read_text().splitlines() if line.startswith("end")
    )
    assert ended == sorted(ids)
    async with open_backend(example_url) as backend:
        for task_id in ids:
            task = await backend.get(task_id)
            assert task is not None and (task.status, task.attempts) == (TaskStatus.DONE, 1)
