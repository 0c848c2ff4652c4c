"""Wake-up latency: how soon an idle worker starts a task pushed to it, beside SAQ, PgQueuer
and Procrastinate, in one run on the same servers.

For each system and backend: one worker process (concurrency 10) idles, warmed up by a few
tasks; then 200 single pushes 20 ms apart, each from this process (so on SQLite the producer
is another process than the worker). The latency of a push is from its call returning to
the handler starting, on the monotonic clock the processes share (a handler that starts
before the push returns counts 0). Prints one JSON line ``wakeup_latency`` per system and
backend: p50/p95/p99/max in milliseconds, and the CPU the waiting worker used while idle
(percent of one core, over ``--idle-seconds`` before the pushes).

Floors (issue 12): shoal on Redis at or below SAQ's figures in the same run; shoal on SQLite
at most 10 ms at p99 across processes; shoal on PostgreSQL no worse than the best peer there.
Servers come from ``tests/servers/`` (PostgreSQL with fsync off, Redis with AOF).

Usage: python bench/wakeup_latency.py [--samples 200] [--spacing 0.02] [--only shoal]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from bench.common import ROOT, emit, point, quantile
from bench.noop_app import LATENCY_LOG, app, begin
from bench.wakeup_peers import CONCURRENCY, PREPARE, PRODUCERS, Push
from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer

SYSTEMS = (
    ("shoal", "sqlite"),
    ("shoal", "postgres"),
    ("saq", "postgres"),
    ("pgqueuer", "postgres"),
    ("procrastinate", "postgres"),
    ("shoal", "redis"),
    ("saq", "redis"),
)
SQLITE_P99_FLOOR_MS = 10.0
WARM_UP = 5
"""Tasks run before measuring: the worker is up, its listener in place, its imports done."""


@contextlib.asynccontextmanager
async def shoal_producer(url: str) -> AsyncIterator[Push]:
    point(app, url)
    async with app:

        async def push(n: int) -> None:
            await begin.push(n=n)

        yield push


async def prepare(system: str, url: str) -> None:
    if system == "shoal":
        point(app, url)
        async with app:
            await app.backend.setup()
    elif system in PREPARE:
        await PREPARE[system](url)


def start(system: str, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, LATENCY_LOG: str(log), "SHOAL_LOG_LEVEL": "warning"}
    if system == "shoal":
        command = ["-m", "shoal", "worker", "bench.noop_app:app"]
        command += ["--concurrency", str(CONCURRENCY)]
        env["SHOAL_BACKEND_URL"] = url
    else:
        command = [str(ROOT / "bench" / "wakeup_peers.py"), system, url]
    return subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env)


def started_at(log: Path) -> dict[int, float]:
    if not log.exists():
        return {}
    return {int(n): float(t) for n, t in (line.split() for line in log.read_text().splitlines())}


async def until_logged(log: Path, wanted: set[int], timeout: float) -> dict[int, float]:
    deadline = time.monotonic() + timeout
    while not wanted <= (seen := started_at(log)).keys():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(wanted - seen.keys())} tasks never started ({log.name})")
        await asyncio.sleep(0.05)
    return seen


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def measure(
    system: str, backend: str, url: str, folder: Path, arguments: argparse.Namespace
) -> None:
    log = folder / f"{system}-{backend}.log"
    await prepare(system, url)
    worker = start(system, url, log)
    producer = shoal_producer(url) if system == "shoal" else PRODUCERS[system](url)
    try:
        async with producer as push:
            for n in range(-WARM_UP, 0):  # negative: not measured
                await push(n)
                await until_logged(log, {n}, timeout=60)
            meter = psutil.Process(worker.pid)
            idle_from = cpu_seconds(meter)
            await asyncio.sleep(arguments.idle_seconds)
            idle_cpu = (cpu_seconds(meter) - idle_from) / arguments.idle_seconds
            returned: dict[int, float] = {}
            for n in range(arguments.samples):
                await push(n)
                returned[n] = time.monotonic()
                await asyncio.sleep(arguments.spacing)
            seen = await until_logged(log, set(returned), timeout=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    delays = [max(0.0, seen[n] - returned[n]) for n in returned]
    emit(
        "wakeup_latency",
        system=system,
        backend=backend,
        samples=len(delays),
        spacing_ms=arguments.spacing * 1000,
        p50_ms=quantile(delays, 50),
        p95_ms=quantile(delays, 95),
        p99_ms=quantile(delays, 99),
        max_ms=round(max(delays) * 1000, 3),
        idle_cpu_percent=round(idle_cpu * 100, 2),
        load_average_1m=round(os.getloadavg()[0], 2),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--spacing", type=float, default=0.02, help="seconds between pushes")
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument("--only", action="append", help="systems to run (default: all)")
    arguments = parser.parse_args()
    chosen = [(s, b) for s, b in SYSTEMS if not arguments.only or s in arguments.only]
    with (
        tempfile.TemporaryDirectory() as name,
        PostgresServer() as postgres,
        RedisServer(Path(name, "redis")) as redis,
    ):
        folder = Path(name)
        for system, backend in chosen:
            if backend == "sqlite":
                url = f"sqlite:///{folder / 'wakeups.db'}"
            elif backend == "postgres":
                url = postgres.url(postgres.create_database(f"{system}_latency"))
            else:
                url = redis.url(prefix="latency") if system == "shoal" else redis.url()
            await measure(system, backend, url, folder, arguments)


if __name__ == "__main__":
    asyncio.run(main())
