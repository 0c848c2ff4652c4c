"""Bulk repair and ``shoal workers`` through the real CLI, in subprocesses.

Matrix: each test runs once per backend of :data:`tests.e2e.conftest.BACKENDS` (SQLite,
PostgreSQL, Redis), on a fresh, migrated database; stdin is not a terminal unless a test
gives the command a pseudo-terminal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from shoal.backends import open_backend
from shoal.core.models import Failure, NewTask, TaskStatus
from shoal.core.version import VERSION
from shoal.testing.contract import new_task

from .conftest import BACKENDS, ROOT, Workers, migrate, wait_for


@pytest.fixture(params=sorted(BACKENDS))
def url(request: pytest.FixtureRequest) -> str:
    found: str = request.getfixturevalue(BACKENDS[request.param])
    migrate(found)
    return found


def run(url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shoal", *arguments, "--backend-url", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def named(queue: str, name: str, max_attempts: int = 1) -> NewTask:
    return dataclasses.replace(new_task(queue, max_attempts=max_attempts), name=name)


def seed(url: str) -> dict[str, list[str]]:
    """Dead tasks (3 on "a" named a.one, 2 on "b" named b.two), one done, one queued."""

    async def go() -> dict[str, list[str]]:
        async with open_backend(url) as backend:
            ids = {
                "a": await backend.push([named("a", "a.one") for _ in range(3)]),
                "b": await backend.push([named("b", "b.two") for _ in range(2)]),
            }
            for queue in ("a", "b"):
                claims = await backend.claim([queue], "w", 10, 30)
                await backend.fail([Failure(c.lease, "boom", None) for c in claims])
            ids["done"] = await backend.push([named("c", "c.three")])
            [claim] = await backend.claim(["c"], "w", 1, 30)
            await backend.ack([claim.lease])
            ids["queued"] = await backend.push([named("c", "c.three")])
            return ids

    return asyncio.run(go())


def status_of(url: str, ids: list[str]) -> list[TaskStatus | None]:
    async def go() -> list[TaskStatus | None]:
        async with open_backend(url) as backend:
            return [None if t is None else t.status for t in [await backend.get(i) for i in ids]]

    return asyncio.run(go())


def test_bulk_retry_counts_confirms_and_retries_what_the_filters_select(url: str) -> None:
    ids = seed(url)
    dry = run(url, "jobs", "retry", "--status", "dead", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == ["5 tasks match"]
    assert status_of(url, ids["a"] + ids["b"]) == [TaskStatus.DEAD] * 5

    refused = run(url, "jobs", "retry", "--status", "dead", "--queue", "a")
    assert refused.returncode == 2
    assert refused.stdout.splitlines() == ["3 tasks match"]
    assert "there is no terminal to ask: add --yes" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert status_of(url, ids["a"]) == [TaskStatus.DEAD] * 3

    future = run(url, "jobs", "retry", "--status", "dead", "--since", "2999-01-01", "--yes")
    assert future.stdout.splitlines() == ["0 tasks match"]

    by_name = run(url, "jobs", "retry", "--status", "dead", "--task", "b.two", "--yes")
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout.splitlines() == ["2 tasks match", "queued 2 tasks again"]
    assert status_of(url, ids["b"]) == [TaskStatus.QUEUED] * 2
    assert status_of(url, ids["a"]) == [TaskStatus.DEAD] * 3

    listed = run(url, "jobs", "list", "--task", "a.one")
    assert sorted(line.split()[0] for line in listed.stdout.splitlines()[2:]) == sorted(ids["a"])

    mixed = run(url, "jobs", "retry", ids["a"][0], "--status", "dead")
    assert mixed.returncode == 2 and "not both (--status)" in mixed.stderr
    bare = run(url, "jobs", "retry")
    assert bare.returncode == 2 and "select the tasks to retry with --status" in bare.stderr


def test_bulk_purge_by_age_deletes_finished_tasks_only(url: str) -> None:
    ids = seed(url)
    recent = run(url, "jobs", "purge", "--older-than", "1h", "--yes")
    assert recent.stdout.splitlines() == ["0 tasks match"]
    bad = run(url, "jobs", "purge", "--older-than", "a week")
    assert bad.returncode == 2 and "--older-than must be a duration" in bad.stderr

    purged = run(url, "jobs", "purge", "--older-than", "0s", "--queue", "a", "--yes")
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.splitlines() == ["3 tasks match", "purged 3 tasks"]
    everything = run(url, "jobs", "purge", "--older-than", "0s", "--yes")
    assert everything.stdout.splitlines() == ["3 tasks match", "purged 3 tasks"]  # 2 dead, 1 done
    assert status_of(url, ids["a"] + ids["b"] + ids["done"]) == [None] * 6
    assert status_of(url, ids["queued"]) == [TaskStatus.QUEUED]


@pytest.mark.parametrize(("answer", "purged"), [("y", True), ("n", False)])
def test_a_terminal_is_asked(url: str, answer: str, purged: bool) -> None:
    ids = seed(url)
    controller, terminal = pty.openpty()
    command = [sys.executable, "-m", "shoal", "jobs", "purge", "--status", "dead"]
    with subprocess.Popen(
        [*command, "--backend-url", url],
        cwd=ROOT,
        stdin=terminal,
        stdout=terminal,
        stderr=subprocess.PIPE,
    ) as process:
        os.close(terminal)
        try:
            shown = _read_until(controller, "[y/N] ")
            assert shown.splitlines()[-2:] == ["5 tasks match", "purge 5 tasks? [y/N] "]
            os.write(controller, f"{answer}\n".encode())
            _, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
        finally:
            os.close(controller)
            if process.poll() is None:
                process.kill()
    gone = status_of(url, ids["a"] + ids["b"])
    assert gone == ([None] * 5 if purged else [TaskStatus.DEAD] * 5)


def _read_until(descriptor: int, marker: str, timeout: float = 60.0) -> str:
    """What the terminal showed up to ``marker``, its line ends as written."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} on the terminal within {timeout}s: {seen!r}"
        ready, _, _ = select.select([descriptor], [], [], left)
        if ready:
            seen += os.read(descriptor, 1024)
    return seen.decode().replace("\r\n", "\n")


def test_shoal_workers_shows_each_worker_with_its_version(workers: Workers) -> None:
    process = workers.start("--queues", "e2e,mail", "--concurrency", "3", "--host", "node-7")

    def listed() -> str:
        table = run(workers.url, "workers").stdout
        return table if "node-7" in table else ""

    wait_for(lambda: bool(listed()), 60, "the worker in `shoal workers`")
    header, _, row = listed().splitlines()[:3]
    assert header.split()[:4] == ["host", "pid", "queues", "in"]
    cells = row.split()
    assert cells[:4] == ["node-7", str(process.pid), "e2e,mail", "0/3"]
    assert VERSION in cells
    assert "ago" in row  # the last heartbeat, as an age
