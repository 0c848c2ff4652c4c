"""Shared pieces of the benchmarks: JSON-line output and a worker process to time."""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from shoal import Worker, WorkerSettings
from shoal.app import App

ROOT = Path(__file__).resolve().parents[1]


def emit(benchmark: str, **figures: Any) -> None:
    """Print one result as a JSON line, stamped with the date and the machine."""
    line = {
        "benchmark": benchmark,
        **figures,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
    }
    print(json.dumps(line), flush=True)


def point(app: App, url: str) -> None:
    """Point ``app`` at ``url``; its next use builds a fresh backend there."""
    app.backend_url = url
    app.use_backend(None)


def start_worker(url: str, *flags: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SHOAL_BACKEND_URL": url, "SHOAL_LOG_LEVEL": "warning"}
    return subprocess.Popen(
        [sys.executable, "-m", "shoal", "worker", "bench.noop_app:app", *flags],
        cwd=ROOT,
        env=env,
    )


async def push_noops(app: App, count: int, batch: int = 1000, *, kept: bool = False) -> float:
    """Push ``count`` no-op tasks in batches (``kept``: ones that keep their result); return
    tasks pushed per second."""
    from bench.noop_app import kept_noop, noop

    task = kept_noop if kept else noop
    started = time.perf_counter()
    for offset in range(0, count, batch):
        await task.push_many([{}] * min(batch, count - offset))
    return count / (time.perf_counter() - started)


class CpuMeter:
    """CPU seconds (user + system) a worker process spends from :meth:`mark` to its last
    :meth:`sample`: sampled while it runs, as a process's times are gone once it is reaped.
    Startup (imports) comes before the mark and is not counted."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self._start = 0.0
        self._last = 0.0

    def sample(self) -> None:
        try:
            times = self._process.cpu_times()
        except psutil.Error:  # exited: the last sample stands
            return
        self._last = times.user + times.system

    def mark(self) -> None:
        self.sample()
        self._start = self._last

    def microseconds_per(self, count: int) -> float:
        return round((self._last - self._start) * 1e6 / count, 1)


async def end_to_end(
    app: App, url: str, count: int, concurrency: int, *, kept: bool = False
) -> tuple[float, float, float]:
    """Push ``count`` no-ops (``kept``: that keep their result), drain them with one worker
    process; (push rate, tasks/s, the worker's CPU microseconds per task)."""
    point(app, url)
    async with app:
        await app.backend.setup()
        push_rate = await push_noops(app, count, kept=kept)
        worker = start_worker(url, "--concurrency", str(concurrency))
        meter = CpuMeter(worker.pid)
        try:
            elapsed = await time_drain(app, count, meter)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    return push_rate, count / elapsed, meter.microseconds_per(count)


async def time_drain(app: App, count: int, meter: CpuMeter, queue: str = "bench") -> float:
    """Seconds from the first task leaving the queue until none is left; ``meter`` marks the
    first and samples the last."""
    first_claim = None
    while True:
        stats = (await app.backend.stats([queue]))[queue]
        remaining = stats.ready + stats.running + stats.scheduled
        now = time.perf_counter()
        meter.sample()
        if first_claim is None and remaining < count:
            first_claim = now
            meter.mark()
        if remaining == 0 and first_claim is not None:
            return now - first_claim
        await asyncio.sleep(0.02)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/<pid>/status")


async def enqueue_to_start(
    app: App,
    url: str,
    log: Path,
    samples: int,
    spacing: float,
    settle: float,
    concurrency: int = 20,
) -> list[float]:
    """Push one ``stamp`` task at a time to an idle worker process; seconds to each start.

    ``settle`` gives the worker's wake-up listener time to be in place after it registers.
    """
    from bench.noop_app import LATENCY_LOG, stamp

    os.environ[LATENCY_LOG] = str(log)
    async with app:
        worker = start_worker(url, "--concurrency", str(concurrency))
        try:
            deadline = time.monotonic() + 30
            while not await app.backend.workers():  # registered: it is up and waiting
                assert time.monotonic() < deadline, "the worker never registered"
                await asyncio.sleep(0.05)
            await asyncio.sleep(settle)
            for _ in range(samples):
                await stamp.push(sent=time.monotonic())
                await asyncio.sleep(spacing)
            deadline = time.monotonic() + 30
            while len(read_delays(log)) < samples:
                assert time.monotonic() < deadline, "some stamps never ran"
                await asyncio.sleep(0.05)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    return read_delays(log)


def read_delays(log: Path) -> list[float]:
    """What the ``stamp`` tasks wrote: seconds from push to start, one a line."""
    return [float(line) for line in log.read_text().split()] if log.exists() else []


def quantile(values: list[float], q: int) -> float:
    """The q-th percentile, in milliseconds."""
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000, 3)


async def profile_worker(app: App, count: int, concurrency: int, libraries: str) -> str:
    """cProfile of a worker in this process running ``count`` no-op tasks: the top by own
    time, then shoal's and ``libraries``' functions by cumulative time."""
    async with app:
        await push_noops(app, count)
        worker = Worker(app, WorkerSettings(concurrency=concurrency))
        profiler = cProfile.Profile()
        profiler.enable()
        running = asyncio.create_task(worker.run())
        while worker.processed < count:  # noqa: ASYNC110 (the worker signals nothing)
            await asyncio.sleep(0.01)
        worker.stop()
        await running
        profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(rf"shoal|{libraries}", 30)
    return text.getvalue()
