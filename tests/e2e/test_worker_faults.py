"""Worker processes under hostile handlers, stalled backend calls and a database outage.

Matrix: the drain test runs on every backend (the parametrised ``workers`` fixture); the
blocked-loop test on SQLite (nothing in it depends on the backend); the stalled heartbeat
and the outage on PostgreSQL, whose locks and restarts the tests control. Each drives real
``shoal worker`` processes (tests/e2e/conftest.py) and reads what ran from the handlers' log.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.core.models import TaskStatus
from tests.e2e.conftest import Workers, migrate, push, statuses, wait_for
from tests.servers.postgres import PostgresServer


def test_a_handler_that_ignores_cancellation_cannot_stretch_the_drain(workers: Workers) -> None:
    [task_id] = push(workers.url, [{"seconds": 60}], task="ignore_cancellation")
    worker = workers.start("--shutdown-timeout", "2", "--lease-seconds", "3")
    wait_for(lambda: workers.count("start")[task_id] == 1, what="the handler to start")
    signalled = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0, workers.output(worker)
    took = time.monotonic() - signalled
    assert took < 2 + 1 + 3  # the timeout, the grace after cancelling, the last records
    output = workers.output(worker)
    assert "still running after the shutdown timeout" in output
    assert task_id in output
    assert workers.count("ignored")[task_id] == 1
    assert statuses(workers.url, [task_id]) == {task_id: (TaskStatus.RUNNING, 1)}  # its lease

    workers.start("--lease-seconds", "3", SHOAL_TEST_MAX_SLEEP="0.1")  # after the lease
    wait_for(lambda: workers.count("end")[task_id] == 1, what="another worker to run it")
    assert statuses(workers.url, [task_id]) == {task_id: (TaskStatus.DONE, 2)}


def test_a_blocked_event_loop_is_logged_with_its_task(sqlite_url: str, tmp_path: Path) -> None:
    migrate(sqlite_url)
    workers = Workers(sqlite_url, tmp_path / "events.log")
    try:
        [task_id] = push(sqlite_url, [{"seconds": 2.0}], task="block_the_loop")
        worker = workers.start()
        wait_for(lambda: workers.count("end")[task_id] == 1, what="the blocking handler")
        wait_for(lambda: "event loop was blocked for" in workers.output(worker), what="a log")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(10) == 0
    finally:
        workers.stop_all()
    lines = workers.output(worker).splitlines()
    noticed = [line for line in lines if "event loop blocked for" in line]
    ended = [line for line in lines if "event loop was blocked for" in line]
    assert noticed and task_id in noticed[0]  # said while it lasted, naming the task
    assert len(ended) == 1 and task_id in ended[0]
    seconds = float(ended[0].split("event loop was blocked for ")[1].split("s")[0])
    assert 1.5 <= seconds < 3.0


@contextlib.contextmanager
def workers_on(server: PostgresServer, tmp_path: Path) -> Iterator[tuple[str, Workers]]:
    """A fresh, migrated database on ``server`` (its name), and workers for it."""
    database = server.create_database()
    migrate(server.url(database))
    workers = Workers(server.url(database), tmp_path / "events.log")
    try:
        yield database, workers
    finally:
        workers.stop_all()
    server.drop_database(database)


def test_a_stop_while_a_heartbeat_waits_starts_nothing_claimed_ahead(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    server = postgres_server
    with workers_on(server, tmp_path) as (database, workers):
        started_before, ids = stop_while_a_heartbeat_waits(server, database, workers)
        assert set(workers.count("start")) == started_before  # nothing new after the stop
        after = statuses(workers.url, ids)
        held = [after[t] for t in ids if t not in started_before]
        assert held and all(status == (TaskStatus.QUEUED, 0) for status in held)  # released


def stop_while_a_heartbeat_waits(
    server: PostgresServer, database: str, workers: Workers
) -> tuple[set[str], list[str]]:
    """Send SIGTERM while a heartbeat waits for a lock and claimed-ahead tasks could start;
    returns the tasks started before it, and every task's id."""
    url = workers.url
    blocker = threading.Thread(
        target=server.psql,
        args=(
            "BEGIN; LOCK TABLE shoal.workers IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(2); COMMIT;",
            database,
        ),
    )
    ids = push(url, [{"seconds": 0.2}] * 60)
    worker = workers.start("--concurrency", "4", "--prefetch", "40", "--lease-seconds", "3")
    wait_for(lambda: len(workers.count("start")) >= 4, what="four tasks to start")
    blocker.start()  # heartbeats (and reaps) write that table: the next one waits
    try:

        def heartbeat_waits() -> bool:
            waiting = server.psql(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = 'workers' AND NOT l.granted",
                database,
            )
            return int(waiting) > 0

        wait_for(heartbeat_waits, what="a heartbeat to wait for the lock")
        # Nothing starts while the loop waits; the running tasks end, freeing their slots.
        wait_for(lambda: set(workers.count("end")) == set(workers.count("start")), what="ends")
        started_before = set(workers.count("start"))
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0, workers.output(worker)
    finally:
        blocker.join(30)
    return started_before, ids


def test_an_outage_shorter_than_the_lease_expires_no_live_workers_lease(
    restartable_postgres: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = restartable_postgres
    tasks = 30
    with workers_on(server, tmp_path) as (_, workers):
        url = workers.url
        # Tasks of 6 s, longer than the outage, so that the workers' loops have nothing to
        # do but keep their leases. Leases of 6 s, heartbeats every second, retried within
        # 0.25 s: the outage of about 4 s is within a lease, and must expire no lease of
        # these live workers. A worker started as the server comes back reaps every 0.2 s:
        # it takes any lease that expires (one back-off for every call once slept past the
        # outage's end until leases expired, and such a worker ran their tasks again).
        ids = push(url, [{"seconds": 6.0}] * tasks)
        flags = ("--concurrency", "5", "--lease-seconds", "6", "--prefetch", "0")
        processes = [workers.start(*flags) for _ in range(2)]
        wait_for(lambda: len(workers.count("start")) == 10, timeout=60, what="ten tasks")
        outage = server.interrupt(3.6)
        processes.append(workers.start(*flags))
        wait_for(lambda: len(workers.count("end")) == tasks, timeout=120, what="every task")
        for process in processes:
            assert process.poll() is None, workers.output(process)
            process.send_signal(signal.SIGTERM)
        for process in processes:
            assert process.wait(30) == 0, workers.output(process)
    starts = workers.count("start")
    twice = sorted(task_id for task_id, count in starts.items() if count > 1)
    with capsys.disabled():
        print(f"\n[postgres outage] {outage:.1f}s unreachable; ran twice: {len(twice)}")
    outputs = "".join(workers.output(p) for p in processes)
    assert "backend error, retrying" in outputs  # the workers did see the outage
    assert set(workers.count("end")) == set(ids)
    assert twice == []
