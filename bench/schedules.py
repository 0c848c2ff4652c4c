"""Periodic tasks on PostgreSQL and Redis: how late ticks start, and what idle schedules cost.

Starts its own servers on loopback (tests/servers/) and prints JSON lines:
- ``schedules_lateness``: three worker processes on one backend run an every-second
  schedule for ``--seconds`` (the issue asks for 600): ticks due, ticks run, ticks run twice
  (must be 0), lateness (handler start minus the tick's moment) p50, p90, p99 and max in
  milliseconds, at the default poll interval;
- ``schedules_idle_cost``: one idle worker process of an app with 1,000 hourly schedules
  (registered by ``shoal migrate --app``, each with its next tick materialised), against
  one of an app with none, over ``--idle-seconds``: PostgreSQL transactions committed per
  second (``pg_stat_database.xact_commit``) or Redis commands per second (``INFO
  commandstats``), and their ratio.

Usage: python bench/schedules.py [--seconds 600] [--idle-seconds 60] [--only postgres|redis]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import redis.asyncio as aioredis

from bench.common import ROOT, emit, quantile
from bench.schedules_app import LATENESS_LOG
from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer


def migrate(url: str, app: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "shoal", "migrate", "--app", app, "--backend-url", url],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )


def start(url: str, app: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SHOAL_BACKEND_URL": url,
        "SHOAL_LOG_LEVEL": "warning",
        LATENESS_LOG: str(log),
    }
    return subprocess.Popen([sys.executable, "-m", "shoal", "worker", app], cwd=ROOT, env=env)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(30)


def lateness(backend: str, url: str, seconds: float, folder: Path) -> None:
    log = folder / f"{backend}-lateness.log"
    migrate(url, "bench.schedules_app:seconds")
    workers = [start(url, "bench.schedules_app:seconds", log) for _ in range(3)]
    time.sleep(15)  # start-up: the ticks that came due meanwhile run late, within grace
    opened = time.time()
    time.sleep(seconds)
    closed = time.time()
    time.sleep(3)
    stop(workers)
    rows = [line.split() for line in log.read_text().splitlines()]
    ticks = [(int(tick), float(late)) for tick, late in rows if opened <= int(tick) < closed]
    runs = collections.Counter(tick for tick, _ in ticks)
    late = [value for _, value in ticks]
    emit(
        "schedules_lateness",
        backend=backend,
        seconds=seconds,
        ticks_due=len(range(math.ceil(opened), math.ceil(closed))),
        ticks_run=len(runs),
        ran_twice=sum(1 for count in runs.values() if count > 1),
        p50_ms=quantile(late, 50),
        p90_ms=quantile(late, 90),
        p99_ms=quantile(late, 99),
        max_ms=round(max(late) * 1000, 3),
    )


async def idle_cost(
    backend: str,
    url: str,
    seconds: float,
    folder: Path,
    counter: Callable[[], Awaitable[int]],
    unit: str,
) -> None:
    rates = {}
    for label, app in (("none", "bench.noop_app:app"), ("1000", "bench.schedules_app:many")):
        migrate(url, app)
        worker = start(url, app, folder / "unused.log")
        await asyncio.sleep(10)  # past its start: registration, first heartbeats
        before, began = await counter(), time.monotonic()
        await asyncio.sleep(seconds)
        rates[label] = (await counter() - before) / (time.monotonic() - began)
        stop([worker])
    emit(
        "schedules_idle_cost",
        backend=backend,
        unit=unit,
        idle_worker_no_schedules=round(rates["none"], 2),
        idle_worker_1000_schedules=round(rates["1000"], 2),
        ratio=round(rates["1000"] / rates["none"], 3) if rates["none"] else None,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--only", choices=["postgres", "redis"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as directory:
        folder = Path(directory)
        if args.only in (None, "postgres"):
            with PostgresServer() as server:
                database = server.create_database()
                url = server.url(database)

                async def commits() -> int:
                    connection = await asyncpg.connect(server.url())
                    try:
                        query = "SELECT xact_commit FROM pg_stat_database WHERE datname = $1"
                        return int(await connection.fetchval(query, database))
                    finally:
                        await connection.close()

                await idle_cost("postgres", url, args.idle_seconds, folder, commits, "commits/s")
                lateness("postgres", server.url(server.create_database()), args.seconds, folder)
        if args.only in (None, "redis"):
            with RedisServer(folder / "redis", appendonly=False) as redis_server:
                url = redis_server.url()
                client = aioredis.Redis.from_url(url)

                async def commands() -> int:
                    stats = await client.info("commandstats")
                    return sum(int(entry["calls"]) for entry in stats.values())

                await idle_cost("redis", url, args.idle_seconds, folder, commands, "commands/s")
                await client.aclose()
                lateness("redis", redis_server.url(prefix="late"), args.seconds, folder)


if __name__ == "__main__":
    asyncio.run(main())
