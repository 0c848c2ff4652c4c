"""The board's task pages at 1,000,000 tasks: the latency of one page of ``list_tasks``.

Loads ``--tasks`` tasks (default 1,000,000) over 10 queues and 20 task names, created over
the last 24 hours, most of them finished (90% done, 2% dead, 5% queued, 1% retrying, 2%
cancelled), into a PostgreSQL and a Redis of its own (tests/servers/), then times pages of
50 as the board asks for them: the first page and pages deep below a random cursor, with
each filter alone and together. Prints one JSON line per backend and listing: p50, p99 and
max in milliseconds over ``--samples`` pages; the bound is p99 <= 200 ms.

The rows are written straight into each backend's layout (COPY into PostgreSQL's table;
the hashes and sorted sets lib.lua documents for Redis), which is what a million pushes and
claims would leave, and each backend's own ``stats`` and ``get`` read them back before the
timing starts.

Usage: python bench/board_pages.py [--tasks 1000000] [--samples 200] [--only postgres|redis]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import redis.asyncio as aioredis

from bench.common import emit
from shoal.backends import Backend, open_backend
from shoal.core.models import TaskStatus
from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer

QUEUES = [f"queue-{n}" for n in range(10)]
NAMES = [f"jobs.task_{n}" for n in range(20)]
STATUSES = [TaskStatus.DONE] * 90 + [TaskStatus.DEAD] * 2 + [TaskStatus.QUEUED] * 5
STATUSES += [TaskStatus.RETRYING] * 1 + [TaskStatus.CANCELLED] * 2
PAGE = 50
BOUND_MS = 200.0


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rows(count: int, now: datetime) -> Iterator[tuple[Any, ...]]:
    """(id, queue, name, status, created_at) oldest first; ids are UUIDv7 of created_at."""
    rng = random.Random(7)
    start = now - timedelta(hours=24)
    step = 24 * 3600 / count
    for n in range(count):
        created = start + timedelta(seconds=n * step)
        millis = int(created.timestamp() * 1000)
        value = (millis << 80) | (0x7 << 76) | (n & 0xFFF) << 64 | (0b10 << 62) | n
        task_id = str(uuid.UUID(int=value))
        yield task_id, rng.choice(QUEUES), rng.choice(NAMES), rng.choice(STATUSES), created


async def load_postgres(url: str, count: int, now: datetime) -> None:
    conn = await asyncpg.connect(url)
    try:
        records = [
            (i, q, n, b"{}", s.value, c, c, 1, 3, c, c if s in _FINISHED else None)
            for i, q, n, s, c in rows(count, now)
        ]
        columns = ["id", "queue", "name", "payload", "status", "run_at", "created_at"]
        columns += ["attempts", "max_attempts", "updated_at", "finished_at"]
        await conn.copy_records_to_table("tasks", schema_name="shoal", records=records,
                                         columns=columns)  # fmt: skip
        await conn.execute("VACUUM ANALYZE shoal.tasks")
    finally:
        await conn.close()


_FINISHED = {TaskStatus.DONE, TaskStatus.DEAD, TaskStatus.CANCELLED}


async def load_redis(url: str, count: int, now: datetime) -> None:
    """The layout of lib.lua: a hash per task, its status index, ready or scheduled."""
    client = aioredis.Redis.from_url(url)
    try:
        pipe = client.pipeline(transaction=False)
        for n, (task_id, queue, name, status, created) in enumerate(rows(count, now), 1):
            base = f"{{shoal:{queue}}}"
            micros = int(created.timestamp() * 1_000_000)
            fields: dict[str, Any] = {
                "id": task_id, "queue": queue, "name": name, "payload": b"{}",
                "status": status.value, "priority": 0, "run_at": micros, "attempts": 1,
                "max_attempts": 3, "lease_expirations": 0, "created_at": micros,
                "updated_at": micros,
            }  # fmt: skip
            if status in _FINISHED:
                fields["finished_at"] = micros
                pipe.zadd(f"{base}:f:{status.value}", {task_id: micros})  # finish-time index
            pipe.hset(f"{base}:t:{task_id}", mapping=fields)
            pipe.zadd(f"{base}:s:{status.value}", {task_id: 0})
            if status in (TaskStatus.QUEUED, TaskStatus.RETRYING):
                pipe.zadd(f"{base}:ready", {task_id: (1023 << 42) + micros // 1000})
            if n % 20_000 == 0:
                await pipe.execute()
        pipe.sadd("{shoal}:queues", *QUEUES)
        await pipe.execute()
    finally:
        await client.aclose()


def listings(ids: list[str], now: datetime) -> dict[str, Callable[[Backend], Awaitable[Any]]]:
    """The pages the board asks for, each with a fresh random cursor per call."""
    rng = random.Random(11)

    def deep() -> str:
        return rng.choice(ids)

    hour_ago = now - timedelta(hours=1)
    day_part = now - timedelta(hours=20)
    dead, done = [TaskStatus.DEAD], [TaskStatus.DONE]
    return {
        "first page": lambda b: b.list_tasks(limit=PAGE),
        "deep page": lambda b: b.list_tasks(before=deep(), limit=PAGE),
        "dead, deep": lambda b: b.list_tasks(statuses=dead, before=deep(), limit=PAGE),
        "queue + done, deep": lambda b: b.list_tasks(
            queue=rng.choice(QUEUES), statuses=done, before=deep(), limit=PAGE
        ),
        "queue, deep": lambda b: b.list_tasks(queue=rng.choice(QUEUES), before=deep(), limit=PAGE),
        "name, deep": lambda b: b.list_tasks(name=rng.choice(NAMES), before=deep(), limit=PAGE),
        "name + dead": lambda b: b.list_tasks(name=rng.choice(NAMES), statuses=dead, limit=PAGE),
        "queue + name + dead": lambda b: b.list_tasks(
            queue=rng.choice(QUEUES), name=rng.choice(NAMES), statuses=dead, limit=PAGE
        ),
        "last hour + dead": lambda b: b.list_tasks(since=hour_ago, statuses=dead, limit=PAGE),
        "an hour 20 h ago": lambda b: b.list_tasks(
            since=day_part, until=day_part + timedelta(hours=1), limit=PAGE
        ),
        # Not a page: what the queues page's charts read (done and dead per minute, every queue).
        "charts: finish_counts": lambda b: b.finish_counts(QUEUES, now=now.timestamp()),
    }


async def measure(kind: str, url: str, count: int, samples: int, now: datetime) -> None:
    async with open_backend(url) as backend:
        ids = [i for i, *_ in rows(count, now)]
        stats = await backend.stats(QUEUES)
        assert sum(s.dead for s in stats.values()) > 0, "the load did not land"
        assert await backend.get(ids[-1]) is not None
        for label, listing in listings(ids, now).items():
            await listing(backend)  # warm: plans, scripts
            timings = []
            for _ in range(samples):
                started = time.perf_counter()
                page = await listing(backend)
                timings.append((time.perf_counter() - started) * 1000)
            emit(
                "board_page", backend=kind, listing=label, tasks=count, page=PAGE,
                samples=samples, last_page_size=len(page),
                p50_ms=round(quantile(timings, 0.5), 2), p99_ms=round(quantile(timings, 0.99), 2),
                max_ms=round(max(timings), 2), bound_ms=BOUND_MS,
                within_bound=quantile(timings, 0.99) <= BOUND_MS,
            )  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--only", choices=["postgres", "redis"])
    args = parser.parse_args()
    now = datetime.now(UTC)
    if args.only in (None, "postgres"):
        with PostgresServer() as server:
            url = server.url(server.create_database())
            async with open_backend(url) as backend:
                await backend.setup()
            started = time.perf_counter()
            await load_postgres(url, args.tasks, now)
            print(f"# postgres loaded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            await measure("postgres", url, args.tasks, args.samples, now)
    if args.only in (None, "redis"):
        with (
            tempfile.TemporaryDirectory(prefix="shoal-bench-") as directory,
            RedisServer(Path(directory), appendonly=False) as server,
        ):
            url = server.url()
            started = time.perf_counter()
            await load_redis(url, args.tasks, now)
            print(f"# redis loaded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            await measure("redis", url, args.tasks, args.samples, now)


if __name__ == "__main__":
    asyncio.run(main())
