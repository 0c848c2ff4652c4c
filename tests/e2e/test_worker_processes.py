"""Worker processes under signals: nothing lost, nothing run twice.

Matrix: every backend in ``tests.e2e.conftest.BACKENDS`` (SQLite, PostgreSQL, Redis),
through the parametrised ``workers`` fixture. Each test drives real ``shoal worker``
processes (tests/e2e/conftest.py) and counts, from the log the handlers write, how often
each task started and ended.
"""

from __future__ import annotations

import itertools
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from shoal.core.models import TaskStatus
from tests.e2e.conftest import Workers, push, statuses, wait_for


def test_sigkill_mid_task_is_finished_by_another_worker_after_the_lease(workers: Workers) -> None:
    [task_id] = push(workers.url, [{"seconds": 1.0}])
    doomed = workers.start("--lease-seconds", "1.5")
    wait_for(lambda: workers.count("start")[task_id] == 1, what="the first attempt to start")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    killed_at = time.monotonic()
    workers.start("--lease-seconds", "1.5")
    wait_for(lambda: workers.count("end")[task_id] == 1, what="the rescue to finish")
    assert time.monotonic() - killed_at >= 1.0  # only once the lease had expired
    assert statuses(workers.url, [task_id]) == {task_id: (TaskStatus.DONE, 2)}
    assert workers.count("start")[task_id] == 2


def test_sigterm_drains_then_releases_and_exits_zero(workers: Workers) -> None:
    short = push(workers.url, [{"seconds": 0.3}, {"seconds": 0.3}])
    long = push(workers.url, [{"seconds": 60}, {"seconds": 60}])
    worker = workers.start("--concurrency", "4", "--shutdown-timeout", "1.5")
    wait_for(lambda: len(workers.count("start")) == 4, what="four tasks to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    output = workers.output(worker)
    assert "draining: received SIGTERM" in output
    assert "released 2 unfinished tasks" in output
    after_drain = statuses(workers.url, short + long)
    assert [after_drain[t] for t in short] == [(TaskStatus.DONE, 1)] * 2
    assert [after_drain[t] for t in long] == [(TaskStatus.QUEUED, 0)] * 2

    workers.start("--concurrency", "4", SHOAL_TEST_MAX_SLEEP="0.1")
    wait_for(lambda: all(workers.count("end")[t] == 1 for t in long), what="the released tasks")
    assert all(status == (TaskStatus.DONE, 1) for status in statuses(workers.url, long).values())


def test_two_processes_run_a_thousand_tasks_exactly_once(workers: Workers) -> None:
    first = workers.start("--concurrency", "8")
    second = workers.start("--concurrency", "8")
    # Both must be serving before the push: on a loaded machine one process can start, claim
    # ahead and finish all 1,000 no-op tasks before the other has imported shoal.
    wait_for(
        lambda: all("serving" in workers.output(p) for p in (first, second)),
        what="both workers to serve",
    )
    ids = push(workers.url, [{"seconds": 0.0}] * 1000)
    wait_for(lambda: len(workers.count("end")) == 1000, timeout=90, what="1,000 tasks")
    for process in (first, second):
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    starts, ends = workers.count("start"), workers.count("end")
    assert set(ends) == set(ids)
    assert max(starts.values()) == 1 and max(ends.values()) == 1
    pids = {row[3] for row in workers.events()}
    assert pids == {first.pid, second.pid}  # both took part


def test_retry_policy_end_to_end(workers: Workers) -> None:
    [task_id] = push(workers.url, [{}], task="fail_twice")
    workers.start()
    wait_for(lambda: workers.count("end")[task_id] == 1, what="the third attempt")
    assert statuses(workers.url, [task_id]) == {task_id: (TaskStatus.DONE, 3)}
    starts = [(row[2], row[4]) for row in workers.events() if row[0] == "start"]
    assert [attempt for attempt, _ in starts] == [1, 2, 3]
    gaps = [later[1] - earlier[1] for earlier, later in itertools.pairwise(starts)]
    # base_delay 0.3 s doubling, no jitter: never early. The worker polls every 0.1 s, but a
    # loaded machine delays a process by a second or more, so late is bounded loosely.
    assert 0.3 <= gaps[0] < 2.3 and 0.6 <= gaps[1] < 2.6


def test_metrics_and_the_health_probe_of_a_running_worker(workers: Workers, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    health = tmp_path / "not-yet" / "alive"  # the worker makes the folder
    worker = workers.start(
        "--metrics-port", str(port), "--metrics-address", "127.0.0.1", "--health-file", str(health)
    )
    ids = push(workers.url, [{"seconds": 0.0}] * 3)
    wait_for(lambda: len(workers.count("end")) == 3, what="three tasks")

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            return str(page.read().decode())

    labels = 'queue="e2e",task="tests.e2e.sample_app.work"'
    wait_for(lambda: f"shoal_tasks_succeeded_total{{{labels}}} 3.0" in scrape(), what="metrics")
    text = scrape()
    assert f"shoal_tasks_started_total{{{labels}}} 3.0" in text
    assert 'shoal_tasks_in_flight{queue="e2e"} 0.0' in text
    assert f"shoal_task_duration_seconds_count{{{labels}}} 3.0" in text
    probe_command = [
        sys.executable,
        "-m",
        "shoal",
        "check",
        "--skip-backend",
        "--health-file",
        str(health),
        "--max-age",
        "30",
    ]
    assert subprocess.run(probe_command, check=False).returncode == 0
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    assert statuses(workers.url, ids) == {i: (TaskStatus.DONE, 1) for i in ids}
