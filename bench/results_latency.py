"""Results: push → ``result()`` latency on an idle worker, and what keep_result costs.

Starts its own PostgreSQL (the tests' server: fsync off) and redis-server (AOF on,
everysec) on loopback, and prints JSON lines:
- ``results_push_to_result``: milliseconds from just before a push of ``echo(n)`` until
  ``await handle.result()`` returns ``n`` in this process, one task at a time to an idle
  worker process, p50/p95/p99 (the floor: p99 at most 10 ms on PostgreSQL and Redis). The
  wait is woken by the backend (LISTEN/NOTIFY on the results channel; pub/sub), so this is
  push, the worker's wake-up, claim, run, ack with the value, the notification, and a read.
  Beside it, measured in the same run on the same server, push → the handler starting
  (``bench/common.enqueue_to_start``, the wake-up alone), so that what results add to the
  wake-up is the difference, whatever the machine's load;
- ``results_throughput``: tasks/s end to end for one worker process at concurrency 20 with
  keep_result off (``noop``) and on (``kept_noop``), the two alternated twice in the same
  run, and the ratio of the better of each (the floor: results cost at most 25 %, a ratio of
  0.75 or more); with the worker's CPU microseconds per task for each run, and their ratio
  (best of each), a figure a loaded machine disturbs less than wall time. Both carry the
  one-minute load average: the machine is shared.

Usage: python bench/results_latency.py [--samples 300] [--tasks 20000] [--backends postgres,redis]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, end_to_end, enqueue_to_start, point, quantile, start_worker
from bench.noop_app import app, echo
from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer

CONCURRENCY = 20
LATENCY_FLOOR_MS = 10.0
"""The p99 of push to result(), idle worker."""
COST_FLOOR = 0.75
"""Throughput with keep_result on, as a share of the same run's with it off."""


async def push_to_result(url: str, samples: int, spacing: float) -> list[float]:
    """Seconds from each push of ``echo`` to its ``result()``, one at a time."""
    point(app, url)
    delays = []
    async with app:
        await app.backend.setup()
        worker = start_worker(url, "--concurrency", str(CONCURRENCY))
        try:
            deadline = time.monotonic() + 30
            while not await app.backend.workers():  # registered: up and waiting
                assert time.monotonic() < deadline, "the worker never registered"
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # its listener (and ours, after a first wait) in place
            assert await (await echo.push(-1)).result(timeout=10) == -1
            for n in range(samples):
                started = time.perf_counter()
                handle = await echo.push(n)
                value = await handle.result(timeout=10)
                delays.append(time.perf_counter() - started)
                assert value == n
                await asyncio.sleep(spacing)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    return delays


Runs = dict[bool, list[tuple[float, float]]]
"""keep_result off / on: (tasks/s, worker CPU microseconds per task) of each run."""


async def throughput(urls: list[str], count: int) -> Runs:
    """Tasks/s with keep_result off and on, alternated, each run on a fresh store."""
    runs: Runs = {False: [], True: []}
    for url, kept in zip(urls, [False, True, False, True], strict=True):
        _, rate, cpu = await end_to_end(app, url, count, CONCURRENCY, kept=kept)
        runs[kept].append((rate, cpu))
    return runs


async def push_to_start(url: str, samples: int, spacing: float) -> list[float]:
    """Seconds from each push of ``stamp`` to its handler starting, one at a time."""
    point(app, url)
    async with app:
        await app.backend.setup()
    with tempfile.TemporaryDirectory() as folder:
        return await enqueue_to_start(app, url, Path(folder, "log"), samples, spacing, 1.0)


def report(backend: str, delays: list[float], starts: list[float], runs: Runs) -> None:
    load = round(os.getloadavg()[0], 2)
    p99 = quantile(delays, 99)
    emit(
        "results_push_to_result",
        backend=backend,
        samples=len(delays),
        p50_ms=quantile(delays, 50),
        p95_ms=quantile(delays, 95),
        p99_ms=p99,
        push_to_start_p50_ms=quantile(starts, 50),
        push_to_start_p99_ms=quantile(starts, 99),
        floor_p99_ms=LATENCY_FLOOR_MS,
        meets_floor=p99 <= LATENCY_FLOOR_MS,
        load_average=load,
    )
    off, on = (max(rate for rate, _ in runs[kept]) for kept in (False, True))
    cpu_off, cpu_on = (min(cpu for _, cpu in runs[kept]) for kept in (False, True))
    emit(
        "results_throughput",
        backend=backend,
        concurrency=CONCURRENCY,
        keep_result_off_tasks_per_second=[round(rate) for rate, _ in runs[False]],
        keep_result_on_tasks_per_second=[round(rate) for rate, _ in runs[True]],
        keep_result_off_worker_cpu_us_per_task=[cpu for _, cpu in runs[False]],
        keep_result_on_worker_cpu_us_per_task=[cpu for _, cpu in runs[True]],
        cpu_ratio_off_to_on=round(cpu_off / cpu_on, 3),
        ratio_on_to_off=round(on / off, 3),
        floor=COST_FLOOR,
        meets_floor=on / off >= COST_FLOOR,
        load_average=load,
    )


async def run_postgres(samples: int, count: int) -> None:
    with PostgresServer() as server:
        delays = await push_to_result(server.url(server.create_database()), samples, 0.02)
        starts = await push_to_start(server.url(server.create_database()), samples, 0.02)
        urls = [server.url(server.create_database()) for _ in range(4)]
        report("postgres", delays, starts, await throughput(urls, count))


async def run_redis(samples: int, count: int) -> None:
    with tempfile.TemporaryDirectory() as folder, RedisServer(Path(folder, "redis")) as server:
        delays = await push_to_result(server.url(prefix="latency"), samples, 0.02)
        starts = await push_to_start(server.url(prefix="starts"), samples, 0.02)
        urls = [server.url(prefix=f"throughput{n}") for n in range(4)]
        report("redis", delays, starts, await throughput(urls, count))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--backends", default="postgres,redis")
    arguments = parser.parse_args()
    runs = {"postgres": run_postgres, "redis": run_redis}
    for name in arguments.backends.split(","):
        asyncio.run(runs[name](arguments.samples, arguments.tasks))


if __name__ == "__main__":
    main()
