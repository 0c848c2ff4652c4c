"""Redis without persistence, through the real CLI: ``shoal check`` and a starting worker
warn, ``--require-persistence`` refuses, and a restart that empties the server is reported
as a lost dataset by a running worker and by ``shoal queues``, never as "(nothing)".
Each test runs its own redis-server with ``appendonly no`` and ``save ""``."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Workers, migrate, push, shoal, wait_for
from tests.servers.redis import RedisServer

APP = "tests.e2e.sample_app:app"
NO_PERSISTENCE = 'Redis keeps no persistence (appendonly no, save "")'


@pytest.fixture
def volatile(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis", appendonly=False) as server:
        yield server


def run(url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "SHOAL_TEST_LOG": os.devnull}
    return shoal(*arguments, "--backend-url", url, env=environment)


def test_check_and_a_starting_worker_warn_and_persistence_can_be_required(
    volatile: RedisServer,
) -> None:
    url = volatile.url(prefix="warned")
    migrate(url)
    checked = run(url, "check")
    assert checked.returncode == 0, checked.stdout
    assert f"degraded: {NO_PERSISTENCE}" in checked.stdout
    assert "persistence: none" in checked.stdout

    refused = run(url, "worker", APP, "--require-persistence")
    assert refused.returncode == 3, refused.stderr
    assert "refusing to start with require_persistence" in refused.stderr.splitlines()[-1]

    push(url, [{"seconds": 0.0}])
    warned = run(url, "worker", APP, "--max-tasks", "1", "--poll-interval", "0.1")
    assert warned.returncode == 0, warned.stderr
    [warning] = [line for line in warned.stderr.splitlines() if NO_PERSISTENCE in line]
    assert "WARNING" in warning


def test_a_restart_that_empties_redis_is_reported_as_lost_data(
    volatile: RedisServer, tmp_path: Path
) -> None:
    url = volatile.url(prefix="lost")
    migrate(url)
    push(url, [{"seconds": 30.0}] * 5)
    workers = Workers(url, tmp_path / "events.log")
    try:
        worker = workers.start("--concurrency", "2")
        wait_for(lambda: len(workers.count("start")) == 2, what="two running tasks")
        volatile.restart()  # comes back empty

        vanished = "the Redis dataset under the prefix 'lost' vanished"
        wait_for(lambda: vanished in workers.output(worker), 30, "the worker to say so")
        assert "another worker owns" not in workers.output(worker)
        listed = run(url, "queues")
        assert listed.returncode == 3 and "(nothing)" not in listed.stdout
        assert "never ran here, or the server lost its data" in listed.stderr
        worker.send_signal(signal.SIGTERM)
        wait_for(lambda: "draining" in workers.output(worker), 10, "the drain")
        worker.send_signal(signal.SIGTERM)  # the second skips the wait for running tasks
        assert worker.wait(60) == 0, workers.output(worker)
    finally:
        workers.stop_all()
