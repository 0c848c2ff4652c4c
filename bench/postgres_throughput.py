"""PostgreSQL end to end: no-op tasks through one worker process, against pgbench's floor.

Starts its own PostgreSQL on loopback (tests/servers/postgres.py), twice: the tests' server
(``server: test``: fsync and synchronous_commit off) and one with PostgreSQL's durable
defaults (``server: durable``: every commit flushed to disk, as in production). It prints
JSON lines:
- ``pgbench_queue``: tasks/s of the minimal SQL a PostgreSQL queue needs per task, run by
  ``pgbench`` with 10 clients on the same server: insert a task; claim one with ``FOR
  UPDATE SKIP LOCKED``; mark it done (three statements, each its own transaction, through
  a partial index on the queued rows);
- ``postgres_push_many``: tasks/s pushed in batches of 1,000;
- ``postgres_end_to_end``: tasks/s for one worker process at concurrency 20, from its first
  claim to its last ack, and as a ratio of the pgbench rate on the same server (the floor
  is 3);
- ``postgres_server_time``: where that run's time went: on the server, from
  ``pg_stat_statements``, the worker's claim and ack statements, their calls, tasks per
  call and execution time per task; in the worker, its CPU time per task (psutil); and the
  run's wall time per task;
- ``postgres_enqueue_to_start`` (test server): milliseconds from just before a push to the
  handler starting, p50/p95/p99, one task at a time to an idle worker process, woken by
  LISTEN/NOTIFY (``mode: listen``, the floor is 25 ms at p99) and by polling alone
  (``mode: poll``, at the default poll interval of 1 s).
``--profile`` also runs a worker in this process under cProfile (test server) and writes
the top of the profile to bench/profiles/postgres.txt.

Usage: python bench/postgres_throughput.py [--tasks 20000] [--samples 500] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bench.common import (
    ROOT,
    CpuMeter,
    emit,
    enqueue_to_start,
    point,
    profile_worker,
    push_noops,
    quantile,
    start_worker,
)
from bench.noop_app import app
from tests.servers.postgres import PostgresServer

CONCURRENCY = 20
PGBENCH_CLIENTS = 10
END_TO_END_FLOOR = 3.0
"""shoal end to end must run at least this many times the pgbench rate."""
P99_FLOOR_MS = 25.0
"""Enqueue to start, at the 99th percentile, with LISTEN/NOTIFY, at most this."""

QUEUE_SCHEMA = """
CREATE TABLE queue (
    id      bigserial PRIMARY KEY,
    status  text NOT NULL DEFAULT 'queued',
    payload jsonb NOT NULL
);
CREATE INDEX queue_queued ON queue (id) WHERE status = 'queued';
"""

QUEUE_SCRIPT = """\
INSERT INTO queue (payload) VALUES ('{}');
WITH next AS (
    SELECT id FROM queue WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE queue SET status = 'running' FROM next WHERE queue.id = next.id RETURNING queue.id
) SELECT coalesce((SELECT id FROM claimed), 0) AS id \\gset
UPDATE queue SET status = 'done' WHERE id = :id;
"""
"""One pgbench transaction = one task: insert, claim, mark done, each statement committed
on its own as a one-task-at-a-time queue would. A claim that finds every row locked gets
id 0 and marks nothing: the rate counts only the tasks marked done."""


def pgbench_queue(server: PostgresServer, folder: Path, seconds: int) -> float:
    """Tasks/s of :data:`QUEUE_SCRIPT` with :data:`PGBENCH_CLIENTS` clients over TCP."""
    database = server.create_database("pgbench_queue")
    server.psql(QUEUE_SCHEMA, database)
    script = folder / "queue.sql"
    script.write_text(QUEUE_SCRIPT)
    command = [str(server.bindir / "pgbench"), "-n", "-M", "prepared", "-f", str(script)]
    command += ["-c", str(PGBENCH_CLIENTS), "-j", "2", "-T", str(seconds)]
    command += ["-h", "127.0.0.1", "-p", str(server.port), "-U", "shoal", database]
    result = subprocess.run(
        command,
        env={**os.environ, "PGPASSWORD": server.password},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    tps = re.search(r"^tps = ([0-9.]+)", result.stdout, re.MULTILINE)
    processed = re.search(r"actually processed: ([0-9]+)", result.stdout)
    if tps is None or processed is None:
        raise RuntimeError(f"unexpected pgbench output:\n{result.stdout}{result.stderr}")
    done = int(server.psql("SELECT count(*) FROM queue WHERE status = 'done'", database))
    server.drop_database(database)
    if done == 0:
        raise RuntimeError("pgbench marked no task done: the script is broken")
    return float(tps.group(1)) * done / int(processed.group(1))


async def use(server: PostgresServer, name: str, options: str = "") -> str:
    """A fresh, migrated database for one measurement; the app points at it."""
    url = server.url(server.create_database(name)) + options
    point(app, url)
    async with app:
        await app.backend.setup()
    return url


FIRST_CLAIM = """
SELECT EXISTS (SELECT 1 FROM shoal.tasks WHERE status = 'running')
    OR EXISTS (SELECT 1 FROM shoal.tasks WHERE status IN ('done', 'cancelled'))
"""
"""Whether a worker has claimed anything yet: two probes of small partial indexes."""


async def time_run(url: str, worker: subprocess.Popen[bytes], meter: CpuMeter) -> float:
    """Seconds from the worker's first claim to its last ack, once it has exited after its
    ``--max-tasks``; ``meter`` marks the first claim and samples until the exit.

    ``bench.common.time_drain`` polls ``stats`` every 20 ms, and on PostgreSQL ``stats``
    counts the ready tasks one index entry at a time (12 to 20 ms at 20,000 deep): it would
    take a third of a core from the run it measures, on a machine of two. Here a cheap probe
    spots the first claim, and the last ``finished_at`` (the server's clock, which is this
    machine's) marks the end; the worker's drain and exit are not counted.
    """
    probe = await asyncpg.connect(url.partition("?")[0])
    try:
        while not await probe.fetchval(FIRST_CLAIM):
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited ({worker.returncode}) before claiming")
            await asyncio.sleep(0.002)
        started = time.time()
        meter.mark()
        while worker.poll() is None:
            meter.sample()
            await asyncio.sleep(0.01)
        if worker.returncode != 0:
            raise RuntimeError(f"the worker failed ({worker.returncode})")
        last: datetime = await probe.fetchval(
            "SELECT max(finished_at) FROM shoal.tasks WHERE status = 'done'"
        )
    finally:
        await probe.close()
    return last.timestamp() - started


SERVER_SETTINGS = {"shared_preload_libraries": "'pg_stat_statements'"}
"""Both servers load pg_stat_statements, so a run can say what its statements cost."""

# pg_stat_statements keeps texts with their constants replaced: matched on what stays.
STATEMENT_TIMES = """
SELECT CASE WHEN query LIKE '%FOR UPDATE SKIP LOCKED%' THEN 'claim' ELSE 'ack' END AS kind,
       sum(calls)::bigint AS calls, sum(rows)::bigint AS tasks,
       sum(total_exec_time) AS milliseconds
FROM pg_stat_statements
WHERE query LIKE '%FOR UPDATE SKIP LOCKED%' OR query LIKE '%RETURNING t.id, lease.token%'
GROUP BY 1
"""


async def statement_times(url: str) -> dict[str, dict[str, float]]:
    """Per kind of statement (claim, ack): calls, tasks and server milliseconds so far."""
    probe = await asyncpg.connect(url.partition("?")[0])
    try:
        rows = await probe.fetch(STATEMENT_TIMES)
    finally:
        await probe.close()
    return {row["kind"]: dict(row) for row in rows}


async def reset_statement_times(url: str) -> None:
    probe = await asyncpg.connect(url.partition("?")[0])
    try:
        await probe.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await probe.execute("SELECT pg_stat_statements_reset()")
    finally:
        await probe.close()


async def end_to_end(url: str, count: int) -> tuple[float, float, float]:
    """(push rate, tasks/s, the worker's CPU microseconds per task)."""
    async with app:
        push_rate = await push_noops(app, count)
        await reset_statement_times(url)
        worker = start_worker(url, "--concurrency", str(CONCURRENCY), "--max-tasks", str(count))
        meter = CpuMeter(worker.pid)
        try:
            elapsed = await time_run(url, worker, meter)
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(30)
        left = (await app.backend.stats(["bench"]))["bench"]
        if left.ready or left.running or left.dead:
            raise RuntimeError(f"the run left work behind: {left}")
    return push_rate, count / elapsed, meter.microseconds_per(count)


async def throughput(server: PostgresServer, folder: Path, seconds: int, count: int) -> None:
    """pgbench's rate, shoal's enqueue and end-to-end rates, and their ratio, on ``server``."""
    kind = "durable" if server.durable else "test"
    floor = pgbench_queue(server, folder, seconds)
    emit(
        "pgbench_queue",
        server=kind,
        clients=PGBENCH_CLIENTS,
        seconds=seconds,
        statements="insert; claim one FOR UPDATE SKIP LOCKED; mark done",
        tasks_per_second=round(floor),
    )
    url = await use(server, "throughput")
    push_rate, rate, worker_cpu = await end_to_end(url, count)
    emit(
        "postgres_push_many",
        server=kind,
        tasks=count,
        batch=1000,
        tasks_per_second=round(push_rate),
    )
    ratio = rate / floor
    emit(
        "postgres_end_to_end",
        server=kind,
        tasks=count,
        concurrency=CONCURRENCY,
        tasks_per_second=round(rate),
        ratio_to_pgbench_queue=round(ratio, 3),
        floor=END_TO_END_FLOOR,
        meets_floor=ratio >= END_TO_END_FLOOR,
    )
    times = await statement_times(url)
    emit(
        "postgres_server_time",
        server=kind,
        wall_us_per_task=round(1e6 / rate, 1),
        worker_cpu_us_per_task=worker_cpu,
        **{
            f"{name}_{figure}": value
            for name, row in sorted(times.items())
            for figure, value in (
                ("calls", row["calls"]),
                ("tasks_per_call", round(row["tasks"] / max(1, row["calls"]), 1)),
                ("server_us_per_task", round(row["milliseconds"] * 1000 / count, 1)),
            )
        },
    )


async def latency(server: PostgresServer, folder: Path, samples: int) -> None:
    """Enqueue to start on an idle worker, woken by LISTEN/NOTIFY and by polling alone."""
    spacing = 0.02
    for mode, options in (("listen", ""), ("poll", "?listen=false")):
        url = await use(server, f"latency_{mode}", options)
        # 1.5 s: the worker's listener is up and its first polls are behind it.
        log = folder / f"latency-{mode}.log"
        delays = await enqueue_to_start(app, url, log, samples, spacing, settle=1.5)
        p99 = quantile(delays, 99)
        figures: dict[str, object] = {"poll_interval_s": 1.0}
        if mode == "listen":
            figures = {"floor_p99_ms": P99_FLOOR_MS, "meets_floor": p99 <= P99_FLOOR_MS}
        emit(
            "postgres_enqueue_to_start",
            server="test",
            mode=mode,
            samples=len(delays),
            spacing_ms=spacing * 1000,
            p50_ms=quantile(delays, 50),
            p95_ms=quantile(delays, 95),
            p99_ms=p99,
            max_ms=round(max(delays) * 1000, 3),
            **figures,
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    arguments = parser.parse_args()
    count = arguments.tasks
    with tempfile.TemporaryDirectory() as folder:
        with PostgresServer(settings=SERVER_SETTINGS) as server:
            await throughput(server, Path(folder), arguments.pgbench_seconds, count)
            await latency(server, Path(folder), arguments.samples)
            if arguments.profile:
                await use(server, "profile")
                report = await profile_worker(app, count, CONCURRENCY, "asyncpg")
                target = ROOT / "bench" / "profiles" / "postgres.txt"
                target.parent.mkdir(exist_ok=True)
                target.write_text(report)
                emit("postgres_profile", written=str(target.relative_to(ROOT)))
        with PostgresServer(durable=True, settings=SERVER_SETTINGS) as server:
            await throughput(server, Path(folder), arguments.pgbench_seconds, count)


if __name__ == "__main__":
    asyncio.run(main())
