"""Wake-up latency: how soon an idle worker starts a task pushed to it, beside SAQ, PgQueuer
and Procrastinate, in one run on the same servers.

For each system and backend: one worker process (concurrency 10) idles, warmed up by a few
tasks; then 200 single pushes 20 ms apart, each from this process (so on SQLite the producer
is another process than the worker). The latency of a push is from its call returning to
the handler starting, on the monotonic clock the processes share (a handler that starts
before the push returns counts 0). Prints one JSON line ``wakeup_latency`` per system and
backend: p50/p95/p99/max in milliseconds, the CPU the waiting worker used while idle
(percent of one core, over ``--idle-seconds`` before the pushes) and its CPU per task during
the pushes. ``--rounds N`` runs every system N times in turn (A B C, A B C, ...), so that a
shared machine's load falls on all of them alike; compare systems within a round.

``--profile`` runs shoal's workers once more with ``bench/wakeup_trace.py`` in them and
prints ``wakeup_stages`` lines: where the time goes from the push returning to the handler
starting (the listener hearing it, the wait returning, the claim starting and returning),
also written to bench/profiles/wakeup.txt.

Floors (issue 12): shoal on Redis at or below SAQ's figures in the same run; shoal on SQLite
at most 10 ms at p99 across processes; shoal on PostgreSQL no worse than the best peer there.
Servers come from ``tests/servers/`` (PostgreSQL with fsync off, Redis with AOF).

``--table FILE`` prints the JSON lines in FILE as the Markdown tables of bench/RESULTS.md.

Usage: python bench/wakeup_latency.py [--samples 200] [--spacing 0.02] [--only shoal]
       [--rounds 3] [--profile] [--label TEXT] | --table bench/results/wakeup.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from bench.common import ROOT, emit, point, quantile
from bench.noop_app import LATENCY_LOG, TRACE, app, begin
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
PROFILE = ROOT / "bench" / "profiles" / "wakeup.txt"
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


STAGES = ("heard", "wait returned", "claim started", "claim returned", "handler started")
"""What ``--profile`` times, each from the stage before (the first from the push returning)."""


def start(system: str, url: str, log: Path, trace: Path | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, LATENCY_LOG: str(log), "SHOAL_LOG_LEVEL": "warning"}
    if trace is not None:
        env[TRACE] = str(trace)
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
    system: str,
    backend: str,
    url: str,
    folder: Path,
    arguments: argparse.Namespace,
    trace: Path | None = None,
    round_number: int = 1,
) -> None:
    log = folder / f"{system}-{backend}-{round_number}{'-traced' if trace else ''}.log"
    await prepare(system, url)
    worker = start(system, url, log, trace)
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
            busy_from = cpu_seconds(meter)
            returned: dict[int, float] = {}
            for n in range(arguments.samples):
                await push(n)
                returned[n] = time.monotonic()
                await asyncio.sleep(arguments.spacing)
            seen = await until_logged(log, set(returned), timeout=60)
            busy_cpu = (cpu_seconds(meter) - busy_from) / arguments.samples
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    if trace is not None:
        stages(backend, trace, returned, seen)
        return
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
        worker_cpu_ms_per_task=round(busy_cpu * 1000, 3),
        round=round_number,
        **({"code": arguments.label} if arguments.label else {}),
        load_average_1m=round(os.getloadavg()[0], 2),
    )


def stages(backend: str, trace: Path, returned: dict[int, float], seen: dict[int, float]) -> None:
    """Milliseconds each stage took, p50/p95/p99, from the worker's trace."""
    spans: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for line in trace.read_text().splitlines():
        n, *times = json.loads(line)
        if n not in returned:
            continue  # a warm-up task
        moments = [returned[n], *times, seen[n]]
        for stage, (before, after) in zip(STAGES, itertools.pairwise(moments), strict=True):
            spans[stage].append(max(0.0, after - before))
    lines = [f"shoal on {backend}: milliseconds from the stage before, p50 / p95 / p99"]
    for stage, values in spans.items():
        figures = {f"p{q}_ms": quantile(values, q) for q in (50, 95, 99)}
        emit("wakeup_stages", system="shoal", backend=backend, stage=stage, **figures)
        lines.append(f"  {stage:16} {' / '.join(f'{v:6.2f}' for v in figures.values())}")
    with PROFILE.open("a") as report:
        report.write("\n".join(lines) + "\n")


def table(lines: list[dict[str, Any]]) -> str:
    """The ``wakeup_latency`` lines as a Markdown table, one row per system, a column group
    per round (p50 / p95 / p99 ms), then the idle CPU and the CPU per task of round one."""
    runs = [line for line in lines if line["benchmark"] == "wakeup_latency"]
    rounds = sorted({line.get("round", 1) for line in runs})
    rows: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = {}
    for line in runs:
        key = (line["backend"], line["system"], line.get("code", ""))
        rows.setdefault(key, {})[line.get("round", 1)] = line
    head = ["backend", "system", *(f"round {r}: p50 / p95 / p99 ms" for r in rounds)]
    head += ["idle CPU", "CPU per task"]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for (backend, system, code), by_round in sorted(rows.items()):
        name = f"**{system}**" if system == "shoal" else system
        cells = [backend, f"{name} ({code})" if code else name]
        for r in rounds:
            line = by_round.get(r)
            cells.append(
                "—" if line is None else f"{line['p50_ms']} / {line['p95_ms']} / {line['p99_ms']}"
            )
        first = by_round[min(by_round)]
        cells.append(f"{first['idle_cpu_percent']} %")
        per_task = first.get("worker_cpu_ms_per_task")
        cells.append("—" if per_task is None else f"{per_task} ms")
        out.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    loads = [line["load_average_1m"] for line in runs]
    dates = sorted(line["date"] for line in runs)
    out.append(
        f"\n{dates[0]} to {dates[-1]}, {runs[0]['machine']}, load average "
        f"{min(loads)}-{max(loads)}; {runs[0]['samples']} pushes "
        f"{runs[0]['spacing_ms']:.0f} ms apart per cell."
    )
    return "\n".join(out)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--spacing", type=float, default=0.02, help="seconds between pushes")
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument("--only", action="append", help="systems to run (default: all)")
    parser.add_argument("--profile", action="store_true", help="trace shoal's stages too")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--label", default="", help="which code this is, added to each line")
    parser.add_argument("--table", type=Path, help="print FILE's JSON lines as Markdown")
    arguments = parser.parse_args()
    if arguments.table:
        print(table([json.loads(line) for line in arguments.table.read_text().splitlines()]))
        return
    chosen = [(s, b) for s, b in SYSTEMS if not arguments.only or s in arguments.only]
    with (
        tempfile.TemporaryDirectory() as name,
        PostgresServer() as postgres,
        RedisServer(Path(name, "redis")) as redis,
    ):
        folder = Path(name)
        for round_number, (system, backend) in itertools.product(
            range(1, arguments.rounds + 1), chosen
        ):
            label = f"{system}_{round_number}"
            if backend == "sqlite":
                url = f"sqlite:///{folder / f'{label}.db'}"
            elif backend == "postgres":
                url = postgres.url(postgres.create_database(label))
            elif system == "shoal":
                url = redis.url(prefix=label)
            else:
                url = redis.url().replace("/0", f"/{round_number}")  # SAQ has no prefix
            await measure(system, backend, url, folder, arguments, round_number=round_number)
        if arguments.profile:
            PROFILE.parent.mkdir(exist_ok=True)
            load = os.getloadavg()[0]
            PROFILE.write_text(f"bench/wakeup_latency.py --profile (load average {load:.1f})\n")
            for backend in ("sqlite", "postgres", "redis"):
                url = f"sqlite:///{folder / 'traced.db'}" if backend == "sqlite" else None
                if backend == "postgres":
                    url = postgres.url(postgres.create_database("shoal_traced"))
                elif backend == "redis":
                    url = redis.url(prefix="traced")
                assert url is not None
                trace = folder / f"trace-{backend}.jsonl"
                await measure("shoal", backend, url, folder, arguments, trace)
            emit("wakeup_profile", written=str(PROFILE.relative_to(ROOT)))


if __name__ == "__main__":
    asyncio.run(main())
