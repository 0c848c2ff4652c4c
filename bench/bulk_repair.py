"""Bulk repair at scale: what ``shoal jobs retry --status dead`` and ``shoal jobs purge`` cost.

For each backend (SQLite file, PostgreSQL and Redis servers started here on loopback), makes
``--tasks`` dead tasks (default 100,000) and prints JSON lines:
- ``bulk_select``: seconds to list every dead id in keyset pages of 1,000 (what the CLI
  counts before it asks);
- ``bulk_retry``: tasks/s of ``retry_many`` over pages of 1,000, and of the per-task path
  (one ``retry`` per round trip, the base class's default) over a sample of ``--sample``
  tasks, with their ratio: the figure that decides whether a backend overrides the default;
- ``bulk_purge``: tasks/s of ``purge_tasks`` over pages of 1,000, once the tasks are dead
  again.
Each line carries the machine's one-minute load average: the figures are of a shared
machine, and the ratio within one run is what counts.

Usage: python bench/bulk_repair.py [--tasks 100000] [--sample 2000] [--backends sqlite,...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit
from shoal.backends import Backend, open_backend
from shoal.cli import bulk
from shoal.core.models import Failure, TaskStatus
from shoal.testing.contract import new_task
from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer

BATCH = 1000


async def make_dead(backend: Backend, count: int) -> None:
    """``count`` dead tasks: pushed, claimed and failed for good a batch at a time."""
    for start in range(0, count, BATCH):
        size = min(BATCH, count - start)
        await backend.push([new_task(max_attempts=1) for _ in range(size)])
        claims = await backend.claim(["default"], "bench", size, 300)
        await backend.fail([Failure(c.lease, "boom", None) for c in claims])


async def kill_queued(backend: Backend, count: int) -> None:
    """Make the retried tasks dead again, for the next measurement."""
    for _ in range(0, count, BATCH):
        claims = await backend.claim(["default"], "bench", BATCH, 300)
        if not claims:
            return
        await backend.fail([Failure(c.lease, "boom", None) for c in claims])


async def per_task(backend: Backend, ids: Sequence[str]) -> int:
    return await Backend.retry_many(backend, ids)  # the base class: one retry per task


async def measure(name: str, url: str, tasks: int, sample: int) -> None:
    load = os.getloadavg()[0]
    async with open_backend(url) as backend:
        await backend.setup()
        await make_dead(backend, tasks)
        dead = bulk.Selection(statuses=(TaskStatus.DEAD,))

        began = time.perf_counter()
        ids = await bulk.matching(backend, dead)
        selected = time.perf_counter() - began
        assert len(ids) == tasks, (len(ids), tasks)
        emit("bulk_select", backend=name, tasks=tasks, seconds=round(selected, 3), load=load)

        began = time.perf_counter()
        slow = await bulk.apply(ids[:sample], lambda page: per_task(backend, page), "retry")
        per_task_rate = sample / (time.perf_counter() - began)
        assert slow == sample
        await kill_queued(backend, sample)

        began = time.perf_counter()
        changed = await bulk.apply(ids, backend.retry_many, "retry")
        paged_rate = tasks / (time.perf_counter() - began)
        assert changed == tasks
        emit(
            "bulk_retry", backend=name, tasks=tasks, paged_per_s=round(paged_rate),
            per_task_per_s=round(per_task_rate), per_task_sample=sample,
            paged_over_per_task=round(paged_rate / per_task_rate, 2), load=load,
            seconds_at_100k_paged=round(100_000 / paged_rate, 1),
            seconds_at_100k_per_task=round(100_000 / per_task_rate, 1),
        )  # fmt: skip

        await kill_queued(backend, tasks)
        ids = await bulk.matching(backend, dead)
        began = time.perf_counter()
        purged = await bulk.apply(ids, backend.purge_tasks, "purge")
        purge_rate = tasks / (time.perf_counter() - began)
        assert purged == tasks
        emit("bulk_purge", backend=name, tasks=tasks, per_s=round(purge_rate), load=load)


async def main(arguments: argparse.Namespace) -> None:
    chosen = arguments.backends.split(",")
    with tempfile.TemporaryDirectory(prefix="shoal-bulk-") as scratch:
        if "sqlite" in chosen:
            url = f"sqlite:///{scratch}/bulk.db"
            await measure("sqlite", url, arguments.tasks, arguments.sample)
        if "postgres" in chosen:
            with PostgresServer(durable=True) as server:
                url = server.url(server.create_database())
                await measure("postgres", url, arguments.tasks, arguments.sample)
        if "redis" in chosen:
            server_r = RedisServer(Path(scratch) / "redis")
            (Path(scratch) / "redis").mkdir()
            server_r.start()
            try:
                await measure("redis", server_r.url(), arguments.tasks, arguments.sample)
            finally:
                server_r.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--backends", default="sqlite,postgres,redis")
    asyncio.run(main(parser.parse_args()))
