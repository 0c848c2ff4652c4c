"""PostgreSQL restarted under two busy worker processes: nothing lost, duplicates counted.

Matrix: PostgreSQL only, on a server of the test's own (``restartable_postgres``), since a
restart cuts every connection to it. The workers run through the real CLI
(tests/e2e/conftest.py); the handlers' log tells how often each task started and ended.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Workers, migrate, push, wait_for
from tests.servers.postgres import PostgresServer

TASKS = 5000
PROCESSES = 2
CONCURRENCY = 10


def test_a_restart_mid_run_loses_nothing(
    restartable_postgres: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = restartable_postgres
    database = server.create_database()
    url = server.url(database)
    migrate(url)
    workers = Workers(url, tmp_path / "events.log")
    try:
        ids = push(url, [{"seconds": 0.003}] * TASKS)
        # A lease of 10 s outlives the outage by far (heartbeats every 1.7 s), and a claim
        # whose reply the restart swallowed is re-queued after it.
        flags = ("--concurrency", str(CONCURRENCY), "--lease-seconds", "10")
        processes = [workers.start(*flags) for _ in range(PROCESSES)]
        wait_for(lambda: len(workers.count("end")) >= TASKS // 4, timeout=60, what="a quarter")

        # Only tasks leased to a worker when the server goes down may run twice (a result
        # the restart kept from being recorded, its lease then expiring): at most the
        # workers' concurrency. How many were running just before is reported too.
        running = int(
            server.psql("SELECT count(*) FROM shoal.tasks WHERE status = 'running'", database)
        )
        ended_before = len(workers.count("end"))
        started = time.monotonic()
        server.restart()
        outage = time.monotonic() - started

        wait_for(lambda: len(workers.count("end")) == TASKS, timeout=90, what="every task")
        for process in processes:
            assert process.poll() is None, workers.output(process)  # reconnected, not crashed
            process.send_signal(signal.SIGTERM)
        for process in processes:
            assert process.wait(30) == 0, workers.output(process)
    finally:
        workers.stop_all()

    starts, ends = workers.count("start"), workers.count("end")
    twice = sorted(task_id for task_id, count in starts.items() if count > 1)
    rows = server.psql("SELECT status, count(*) FROM shoal.tasks GROUP BY status", database)
    # A claim the server committed but whose reply the restart cut off is never run by that
    # worker: its tasks wait out their lease, are re-queued and claimed again (attempt 2),
    # but they run once. Those are counted apart from the tasks that really ran twice.
    reclaimed = int(server.psql("SELECT count(*) FROM shoal.tasks WHERE attempts > 1", database))
    with capsys.disabled():
        print(
            f"\n[postgres restart] {TASKS} tasks, {PROCESSES} workers x {CONCURRENCY}: "
            f"{ended_before} finished before the restart (which took {outage:.1f}s), "
            f"{running} running just before it; claimed again after a lost reply: "
            f"{reclaimed}; ran twice: {len(twice)} {twice[:10]}",
            flush=True,
        )
    assert ended_before < TASKS  # the restart did fall in the middle of the run
    assert set(ends) == set(ids)  # none lost
    assert len(twice) <= PROCESSES * CONCURRENCY  # at most what was in flight
    assert reclaimed >= len(twice)
    outputs = "".join(workers.output(p) for p in processes)
    assert "backend error, retrying" in outputs  # the workers did see the outage
    # One line per event, asyncpg's own warnings too: their tracebacks only at debug level.
    assert "Traceback" not in outputs
    # asyncpg logs its pool's failed reconnects with a traceback; none may come from shoal.
    assert "shoal/worker" not in outputs
    assert dict(line.split("|") for line in rows.splitlines()) == {"done": str(TASKS)}
    server.drop_database(database)
