"""SQLite end to end: no-op tasks through one worker process, against a plain sqlite3 floor.

Prints JSON lines:
- ``sqlite_push_many``: tasks/s pushed in batches of 1,000;
- ``sqlite_end_to_end``: tasks/s for one worker process at concurrency 1 and 16, and the
  worker's CPU microseconds per task;
- ``sqlite3_baseline``: one INSERT plus one UPDATE per task, each its own transaction, on
  the same kind of file (WAL, synchronous=NORMAL): what a naive queue costs per task;
- ``sqlite_idle_worker``: peak resident memory of a worker with nothing to do.
``--profile`` also runs a worker in this process under cProfile and writes the top of the
profile to bench/profiles/sqlite.txt.

Usage: python bench/sqlite_throughput.py [--tasks 20000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    ROOT,
    emit,
    end_to_end,
    peak_rss_mb,
    point,
    profile_worker,
    start_worker,
)
from bench.noop_app import app


def sqlite3_baseline(path: Path, count: int) -> float:
    """Tasks/s for the minimal per-task SQL on one connection: insert, then mark done."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, status TEXT, payload BLOB)")
    started = time.perf_counter()
    for number in range(count):
        db.execute("INSERT INTO jobs VALUES (?, 'queued', x'7b7d')", (number,))
        db.execute("UPDATE jobs SET status = 'done' WHERE id = ?", (number,))
    elapsed = time.perf_counter() - started
    db.close()
    return count / elapsed


async def idle_worker_rss(url: str) -> float:
    point(app, url)
    async with app:
        await app.backend.setup()
    worker = start_worker(url)
    try:
        await asyncio.sleep(3)
        return peak_rss_mb(worker.pid)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true")
    arguments = parser.parse_args()
    count = arguments.tasks
    with tempfile.TemporaryDirectory() as folder:
        base = sqlite3_baseline(Path(folder, "baseline.db"), count)
        emit("sqlite3_baseline", tasks=count, tasks_per_second=round(base))
        for concurrency in (1, 16):
            url = f"sqlite:///{folder}/c{concurrency}.db"
            push_rate, rate, worker_cpu = await end_to_end(app, url, count, concurrency)
            if concurrency == 16:
                emit("sqlite_push_many", tasks=count, batch=1000, tasks_per_second=round(push_rate))
            emit(
                "sqlite_end_to_end",
                tasks=count,
                concurrency=concurrency,
                tasks_per_second=round(rate),
                ratio_to_sqlite3_baseline=round(rate / base, 3),
                worker_cpu_us_per_task=worker_cpu,
            )
        emit(
            "sqlite_idle_worker",
            peak_rss_mb=round(await idle_worker_rss(f"sqlite:///{folder}/idle.db"), 1),
        )
        if arguments.profile:
            point(app, f"sqlite:///{folder}/profile.db")
            async with app:
                await app.backend.setup()
            report = await profile_worker(app, count, 16, "sqlite3")
            target = ROOT / "bench" / "profiles" / "sqlite.txt"
            target.parent.mkdir(exist_ok=True)
            target.write_text(report)
            emit("sqlite_profile", written=str(target.relative_to(ROOT)))


if __name__ == "__main__":
    asyncio.run(main())
