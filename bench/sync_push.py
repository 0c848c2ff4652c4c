"""Sync push next to async push on PostgreSQL, in the same run.

Starts its own PostgreSQL on loopback (tests/servers/postgres.py, the tests' settings:
fsync off) and pushes one no-op task at a time, timing each push: ``async`` awaits
``noop.push()`` on a loop of its own (an app opened with ``async with``); ``sync`` calls
``noop.push_sync()`` from a thread with no loop (the portal's loop and pool, opened by the
first push). The two alternate in rounds so that drift in the machine's load hits both.
It prints one JSON line, ``sync_push``: p50 and p99 in milliseconds of each, and the ratio
of sync to async at each (the floor: within 2x).

Usage: python bench/sync_push.py [--pushes 2000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, quantile
from shoal import App
from tests.servers.postgres import PostgresServer


def noop_app(url: str) -> App:
    app = App(url)

    @app.task(name="bench.noop", queue="bench")
    async def noop() -> None: ...

    return app


async def async_round(app: App, count: int) -> list[float]:
    noop = app.get_task("bench.noop")
    times = []
    for _ in range(count):
        began = time.perf_counter()
        await noop.push()
        times.append(time.perf_counter() - began)
    return times


def sync_round(app: App, count: int) -> list[float]:
    noop = app.get_task("bench.noop")
    times = []
    for _ in range(count):
        began = time.perf_counter()
        noop.push_sync()
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=2000, help="pushes of each kind")
    parser.add_argument("--rounds", type=int, default=10, help="alternations of the two")
    arguments = parser.parse_args()
    per_round = max(1, arguments.pushes // arguments.rounds)
    with PostgresServer() as server:
        url = server.url(server.create_database())
        async_app, sync_app = noop_app(url), noop_app(url)
        timings: dict[str, list[float]] = {"async": [], "sync": []}
        with asyncio.Runner() as runner:
            runner.run(async_app.open())
            runner.run(async_app.backend.setup())
            # Warm both: the first sync push opens the portal's pool.
            runner.run(async_round(async_app, 20))
            sync_round(sync_app, 20)
            for _ in range(arguments.rounds):
                timings["async"] += runner.run(async_round(async_app, per_round))
                timings["sync"] += sync_round(sync_app, per_round)
            runner.run(async_app.close())
        sync_app.call_sync(sync_app.close)
    figures: dict[str, float] = {}
    for kind, times in timings.items():
        figures[f"{kind}_p50_ms"] = quantile(times, 50)
        figures[f"{kind}_p99_ms"] = quantile(times, 99)
    figures["ratio_p50"] = round(figures["sync_p50_ms"] / figures["async_p50_ms"], 2)
    figures["ratio_p99"] = round(figures["sync_p99_ms"] / figures["async_p99_ms"], 2)
    emit("sync_push", backend="postgres", pushes=len(timings["sync"]), **figures)


if __name__ == "__main__":
    main()
