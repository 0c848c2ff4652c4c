"""Shared pieces of the benchmarks: JSON-line output and a worker process to time."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def start_worker(url: str, *flags: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SHOAL_BACKEND_URL": url, "SHOAL_LOG_LEVEL": "warning"}
    return subprocess.Popen(
        [sys.executable, "-m", "shoal", "worker", "bench.noop_app:app", *flags],
        cwd=ROOT,
        env=env,
    )


async def push_noops(app: App, count: int, batch: int = 1000) -> float:
    """Push ``count`` no-op tasks in batches; return tasks pushed per second."""
    from bench.noop_app import noop

    started = time.perf_counter()
    for offset in range(0, count, batch):
        await noop.push_many([{}] * min(batch, count - offset))
    return count / (time.perf_counter() - started)


async def time_drain(app: App, count: int, queue: str = "bench") -> float:
    """Seconds from the first task leaving the queue until none is left."""
    first_claim = None
    while True:
        stats = (await app.backend.stats([queue]))[queue]
        remaining = stats.ready + stats.running + stats.scheduled
        now = time.perf_counter()
        if first_claim is None and remaining < count:
            first_claim = now
        if remaining == 0 and first_claim is not None:
            return now - first_claim
        await asyncio.sleep(0.02)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/<pid>/status")
