"""Limits: a rate limit held by four worker processes together, and what limits cost when
they are not hit. PostgreSQL and Redis, each started by this script on loopback
(tests/servers/). It prints JSON lines:

- ``limits_rate``: four worker processes at concurrency 50 on a queue limited to 100/s run
  no-op tasks (``begin``, which notes when it started) for ``--seconds`` (30): the rate of
  starts over that time, and the most starts in any one-second window (sliding, from each
  start); the bound is 95 to 100 tasks/s with no window above 110;
- ``limits_cost``: no-op tasks through one worker process at concurrency 20 (as in
  bench/*_throughput.py), in the same run: with no limits (the claim's fast path, which the
  backends take while no limited task is due) and with every task under a rate limit too
  high to hold any back (1,000,000/s: the limited path, each claim drawing from the
  bucket), as tasks/s and the ratio of the two, each the median of three runs alternating
  with the other's (the machine's load moves between runs). Timed from the first task
  leaving the queue to the last one's ``finished_at``, with no stats polling during the run
  (on Redis and PostgreSQL the held-back figure reads the limited tasks, which would load
  the server);
- the rate starts 1 s after the first start (``WARM_UP``): the bucket starts full, and the
  busiest second, which includes that first second, counts it.
- with ``--fast-path-only``, ``limits_fast_path``: only the run without limits; run it once
  with ``PYTHONPATH`` naming another checkout's ``runtime/`` (the code before limits) and
  once without, alternately, to compare the claim without limits across versions; and
  ``limits_claim_ack_loop``: the backend alone, in this process, claiming 100 and acking
  them until 20,000 no-op tasks are done (no worker, so less noise from the machine).

``--backends`` may name ``sqlite`` too, for ``limits_cost`` and ``--fast-path-only``.

Usage: python bench/limits.py [--seconds 30] [--tasks 20000] [--backends postgres,redis]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CpuMeter, emit, point, start_worker
from bench.noop_app import LATENCY_LOG, QUEUE_RATE, app, begin, noop
from shoal.backends import open_backend
from shoal.core.ids import new_id
from shoal.core.models import NewTask, utcnow
from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer

RATE = "100/s"
WORKERS = 4
CONCURRENCY = 50
NOT_HIT = "1000000/s"
ROUNDS = 3
WARM_UP = 1.0
"""Seconds from the first start before the sustained rate is counted: the bucket starts full
(a twentieth of the count), which the busiest-second figure includes."""


async def fresh(url: str) -> None:
    point(app, url)
    async with app:
        await app.backend.setup()


async def serving(count: int) -> None:
    """Until ``count`` workers have registered: each is up and claiming."""
    deadline = time.monotonic() + 60
    async with app:
        while len(await app.backend.workers()) < count:
            assert time.monotonic() < deadline, "the workers never registered"
            await asyncio.sleep(0.05)


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(60)


def starts_of(log: Path) -> list[float]:
    text = log.read_text() if log.exists() else ""
    return sorted(float(line.split()[1]) for line in text[: text.rfind("\n") + 1].splitlines())


def busiest_second(starts: list[float]) -> int:
    """The most starts in any one-second window [s, s + 1) beginning at a start."""
    most, end = 0, 0
    for begin_at, first in enumerate(starts):
        while end < len(starts) and starts[end] < first + 1.0:
            end += 1
        most = max(most, end - begin_at)
    return most


async def rate(backend: str, url: str, folder: Path, seconds: float) -> None:
    await fresh(url)
    log = folder / f"{backend}-rate.log"
    os.environ[LATENCY_LOG] = str(log)
    os.environ[QUEUE_RATE] = RATE
    app.limit_queue("bench", RATE)  # the pushes here stamp it too
    workers = [start_worker(url, "--concurrency", str(CONCURRENCY)) for _ in range(WORKERS)]
    try:
        await serving(WORKERS)
        count = int(seconds * 100 * 1.5)  # more than the limit lets run in the time
        async with app:
            for offset in range(0, count, 1000):
                await begin.push_many([{"n": n} for n in range(offset, min(count, offset + 1000))])
        deadline = time.monotonic() + seconds + 60
        while not (found := starts_of(log)) or found[-1] - found[0] < seconds + WARM_UP:
            assert time.monotonic() < deadline, "the run never lasted its time"
            await asyncio.sleep(0.2)
    finally:
        stop(workers)
        del os.environ[QUEUE_RATE]
        app.queue_rates.pop("bench")
    starts = starts_of(log)
    begun = starts[0] + WARM_UP
    measured = [s for s in starts if begun <= s < begun + seconds]
    everything = [s for s in starts if s < begun + seconds]
    emit(
        "limits_rate",
        backend=backend,
        workers=WORKERS,
        concurrency=CONCURRENCY,
        limit=RATE,
        seconds=seconds,
        started=len(measured),
        tasks_per_second=round(len(measured) / seconds, 2),
        first_second=len(everything) - len(measured),
        busiest_second=busiest_second(everything),
        meets_bound=95 <= len(measured) / seconds <= 100 and busiest_second(everything) <= 110,
        load_average_1m=round(os.getloadavg()[0], 2),
    )


async def drain_rate(url: str, count: int, limit: str | None) -> tuple[float, float]:
    """One worker process drains ``count`` no-ops (each under ``limit`` when given):
    (tasks/s from the first claim to the last ``finished_at``, worker CPU us per task)."""
    await fresh(url)
    if limit is not None:
        app.limit_queue("bench", limit)
    try:
        async with app:
            ids = [
                task_id
                for offset in range(0, count, 1000)
                for task_id in await noop.push_many([{}] * min(1000, count - offset))
            ]
            first = ids[0]  # claimed first: FIFO
            worker = start_worker(url, "--concurrency", "20", "--max-tasks", str(count))
            meter = CpuMeter(worker.pid)
            while (task := await app.backend.get(first)) is not None and task.attempts == 0:
                assert worker.poll() is None, f"the worker exited ({worker.returncode})"
                await asyncio.sleep(0.002)
            started = time.time()
            meter.mark()
            while worker.poll() is None:
                meter.sample()
                await asyncio.sleep(0.01)
            assert worker.returncode == 0, f"the worker failed ({worker.returncode})"
            last = [await app.backend.get(task_id) for task_id in ids[-200:]]
            finished = max(t.finished_at.timestamp() for t in last if t and t.finished_at)
            left = (await app.backend.stats(["bench"]))["bench"]
            assert left.ready == left.running == 0, f"the run left work behind: {left}"
    finally:
        if limit is not None:
            app.queue_rates.pop("bench")
    return count / (finished - started), meter.microseconds_per(count)


async def cost(backend: str, url_for: Callable[[str], str], count: int) -> None:
    """Without and with limits, alternating for :data:`ROUNDS` rounds on fresh stores: the
    machine's load moves between runs, so each figure is the median of its runs."""
    runs: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    for round_ in range(ROUNDS):
        for mode, limit in (("off", None), ("on", NOT_HIT)):
            runs[mode].append(await drain_rate(url_for(f"{mode}{round_}"), count, limit))
    off, on = (statistics.median(rate for rate, _ in runs[mode]) for mode in ("off", "on"))
    emit(
        "limits_cost",
        backend=backend,
        tasks=count,
        concurrency=20,
        limit_not_hit=NOT_HIT,
        rounds=ROUNDS,
        tasks_per_second_without_limits=round(off),
        tasks_per_second_with_limits=round(on),
        ratio=round(on / off, 3),
        runs_without=[round(rate) for rate, _ in runs["off"]],
        runs_with=[round(rate) for rate, _ in runs["on"]],
        worker_cpu_us_per_task_without=statistics.median(cpu for _, cpu in runs["off"]),
        worker_cpu_us_per_task_with=statistics.median(cpu for _, cpu in runs["on"]),
        load_average_1m=round(os.getloadavg()[0], 2),
    )


async def claim_ack_loop(backend: str, folder: str) -> float:
    """Tasks/s of claim(100) + ack over 20,000 no-ops without limits, in this process."""

    async def run(url: str) -> float:
        async with open_backend(url) as store:
            await store.setup()
            for _ in range(20):
                await store.push(
                    [NewTask(new_id(), "q", "t", b"{}", utcnow(), 3) for _ in range(1000)]
                )
            started, done = time.perf_counter(), 0
            while claims := await store.claim(["q"], "w", 100, 30):
                await store.ack([claim.lease for claim in claims])
                done += len(claims)
            return done / (time.perf_counter() - started)

    if backend == "postgres":
        with PostgresServer() as server:
            return await run(server.url(server.create_database("loop")))
    if backend == "sqlite":
        return await run(f"sqlite:///{folder}/loop.db")
    with RedisServer(Path(folder, "loop-redis")) as redis:
        return await run(redis.url(prefix="loop"))


async def fast_path(chosen: list[str], count: int) -> None:
    """No limits declared: tasks/s, and which shoal ran it (this one, or PYTHONPATH's)."""
    import shoal

    code = os.path.dirname(os.path.dirname(os.path.dirname(shoal.__file__)))
    with tempfile.TemporaryDirectory() as name:
        for backend in chosen:
            if backend == "postgres":
                with PostgresServer() as server:
                    found = await drain_rate(server.url(server.create_database("off")), count, None)
            elif backend == "sqlite":
                found = await drain_rate(f"sqlite:///{name}/off.db", count, None)
            else:
                with RedisServer(Path(name, "redis")) as redis:
                    found = await drain_rate(redis.url(prefix="off"), count, None)
            emit(
                "limits_claim_ack_loop",
                backend=backend,
                code=code,
                tasks_per_second=round(await claim_ack_loop(backend, name)),
                load_average_1m=round(os.getloadavg()[0], 2),
            )
            emit(
                "limits_fast_path",
                backend=backend,
                code=code,
                tasks=count,
                tasks_per_second=round(found[0]),
                worker_cpu_us_per_task=found[1],
                load_average_1m=round(os.getloadavg()[0], 2),
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--backends", default="postgres,redis")
    parser.add_argument(
        "--fast-path-only",
        action="store_true",
        help="only the run without limits, as limits_fast_path: run it with PYTHONPATH naming "
        "another checkout's runtime/ to compare the claim without limits across versions",
    )
    arguments = parser.parse_args()
    chosen = arguments.backends.split(",")
    if arguments.fast_path_only:
        await fast_path(chosen, arguments.tasks)
        return
    count = arguments.tasks
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if "postgres" in chosen:
            with PostgresServer() as server:
                await rate(
                    "postgres",
                    server.url(server.create_database("rate")),
                    folder,
                    arguments.seconds,
                )
                await cost("postgres", lambda n: server.url(server.create_database(n)), count)
        if "sqlite" in chosen:  # one process: the rate of four workers is for the servers
            await cost("sqlite", lambda n: f"sqlite:///{folder}/{n}.db", count)
        if "redis" in chosen:
            with RedisServer(folder / "redis") as redis:
                await rate("redis", redis.url(prefix="rate"), folder, arguments.seconds)
                await cost("redis", lambda n: redis.url(prefix=n), count)


if __name__ == "__main__":
    asyncio.run(main())
