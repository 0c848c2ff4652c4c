"""Retention bounds storage: Redis memory and PostgreSQL table size before and after expiry.

Starts its own redis-server and PostgreSQL on loopback (tests/servers/), fills each with
``--tasks`` finished (done) tasks through the backend's own push, claim and ack, then reaps
with a short retention until they are gone, and prints JSON lines:
- ``retention_redis``: ``used_memory`` (``INFO memory``) of the empty server, with the
  finished tasks, and after expiry; bytes per finished task; how long one reap takes while
  nothing is due to go (its cost must not follow the tasks kept) and while deleting (tasks
  deleted per second, reaps needed: each deletes at most 10,000); ``retained_after_expiry``
  is the share of the tasks' memory still used after expiry;
- ``retention_postgres``: ``pg_total_relation_size`` of the tasks table (and its heap and
  indexes apart) with the finished tasks, after retention deleted them, after VACUUM, and
  after as many tasks again were finished into the space VACUUM made reusable (plain VACUUM
  gives index pages back to the table, not to the disk); the same reap timings.
Both carry the one-minute load average: the figures are of a shared machine.

Usage: python bench/retention.py [--tasks 1000000] [--only redis|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bench.common import emit
from shoal.backends import Backend, open_backend
from shoal.core.ids import new_id
from shoal.core.models import NewTask, utcnow
from shoal.core.retention import Retention
from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer

BATCH = 1000
LEASE = 5.0
"""Seconds: the shortest lease, so that Redis's claim memos (kept for a lease, at least 5 s,
so that a retried claim is not doubled) are gone before memory is measured after expiry."""
QUEUE = "bench"
KEPT = {QUEUE: Retention()}
"""The default retention: a week, so nothing the bench made is due to go."""
SHORT = timedelta(seconds=1)
GONE = {QUEUE: Retention(done=SHORT, dead=SHORT)}


def task() -> NewTask:
    return NewTask(
        id=new_id(),
        queue=QUEUE,
        name="bench.noop_app.noop",
        payload=b"{}",
        run_at=utcnow(),
        max_attempts=3,
        metadata={"origin": "bench"},
    )


async def fill(backend: Backend, count: int) -> float:
    """Push, claim and ack ``count`` tasks in batches; return tasks finished per second."""
    started = time.perf_counter()
    for offset in range(0, count, BATCH):
        size = min(BATCH, count - offset)
        await backend.push([task() for _ in range(size)])
        claims = await backend.claim([QUEUE], "bench", size, LEASE)
        await backend.ack([c.lease for c in claims])
    return count / (time.perf_counter() - started)


async def reap_timings(backend: Backend, count: int) -> dict[str, float]:
    """Milliseconds of a reap that deletes nothing (a week's retention), then reaps with a
    short retention until nothing is left: reaps needed and tasks deleted per second."""
    started = time.perf_counter()
    await backend.reap(worker_timeout=60, retention=KEPT)
    idle_ms = (time.perf_counter() - started) * 1000
    await asyncio.sleep(SHORT.total_seconds() + 0.1)
    reaps = 0
    started = time.perf_counter()
    while await backend.list_tasks(queue=QUEUE, limit=1):
        await backend.reap(worker_timeout=60, retention=GONE)
        reaps += 1
        if reaps > count // 1000 + 10:
            raise RuntimeError(f"retention left tasks after {reaps} reaps")
    seconds = time.perf_counter() - started
    return {
        "reap_keeping_all_ms": round(idle_ms, 2),
        "reaps_to_expire_all": reaps,
        "expired_per_second": round(count / seconds),
    }


def load() -> float:
    return round(os.getloadavg()[0], 2)


async def redis_figures(count: int) -> None:
    with (
        tempfile.TemporaryDirectory() as folder,
        RedisServer(Path(folder, "redis"), appendonly=False) as server,
        server.client() as client,
    ):

        def used() -> int:
            return int(client.info("memory")["used_memory"])

        async with open_backend(server.url(prefix="retention")) as backend:
            await backend.setup()
            empty = used()
            rate = await fill(backend, count)
            full = used()
            timings = await reap_timings(backend, count)
            await asyncio.sleep(LEASE + 1)  # the last claims' memos expire
            after = used()
        emit(
            "retention_redis",
            tasks=count,
            used_memory_empty=empty,
            used_memory_finished=full,
            used_memory_after_expiry=after,
            bytes_per_finished_task=round((full - empty) / count),
            retained_after_expiry=round((after - empty) / (full - empty), 4),
            finished_per_second=round(rate),
            **timings,
            load_1m=load(),
        )


async def postgres_figures(count: int) -> None:
    with PostgresServer() as server:
        url = server.url(server.create_database("retention"))
        admin = await asyncpg.connect(url)
        try:

            async def sizes() -> dict[str, int]:
                row = await admin.fetchrow(
                    "SELECT pg_total_relation_size('shoal.tasks') AS total,"
                    " pg_relation_size('shoal.tasks') AS heap,"
                    " pg_indexes_size('shoal.tasks') AS indexes"
                )
                assert row is not None
                return dict(row)

            async with open_backend(url) as backend:
                await backend.setup()
                empty = await sizes()
                rate = await fill(backend, count)
                await admin.execute("VACUUM shoal.tasks")  # settled, as autovacuum leaves it
                full = await sizes()
                timings = await reap_timings(backend, count)
                deleted = await sizes()
                await admin.execute("VACUUM shoal.tasks")
                vacuumed = await sizes()
                # As many again: do they fit in the space vacuum made reusable?
                await fill(backend, count)
                await admin.execute("VACUUM shoal.tasks")
                refilled = await sizes()
        finally:
            await admin.close()
        emit(
            "retention_postgres",
            tasks=count,
            **{f"{k}_bytes_empty": v for k, v in empty.items()},
            **{f"{k}_bytes_finished": v for k, v in full.items()},
            **{f"{k}_bytes_after_retention": v for k, v in deleted.items()},
            **{f"{k}_bytes_after_vacuum": v for k, v in vacuumed.items()},
            **{f"{k}_bytes_refilled": v for k, v in refilled.items()},
            bytes_per_finished_task=round((full["total"] - empty["total"]) / count),
            finished_per_second=round(rate),
            **timings,
            load_1m=load(),
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--only", choices=("redis", "postgres"))
    arguments = parser.parse_args()
    if arguments.only in (None, "redis"):
        await redis_figures(arguments.tasks)
    if arguments.only in (None, "postgres"):
        await postgres_figures(arguments.tasks)


if __name__ == "__main__":
    asyncio.run(main())
