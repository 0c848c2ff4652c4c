"""Waiting for results at scale, against real servers: a thousand handles waiting in one
process share the backend's one listener (and a few pooled connections for their looks),
and every one of them hears its task finish in another process's worker.

Matrix: PostgreSQL (connections counted in ``pg_stat_activity``), Redis (clients counted
by ``INFO clients``), SQLite (file descriptors open on the database file).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from shoal import App
from shoal.app.handles import TaskHandle
from shoal.backends.shared.finishes import CONCURRENT_LOOKS
from shoal.testing import drain

WAITERS = 1000


def echo_app(url: str) -> App:
    app = App(url, keep_result=600)

    @app.task(name="echo")
    async def echo(n: int) -> int:
        return n

    return app


async def postgres_connections(url: str) -> dict[str, int]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT application_name AS name, count(*) AS n FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "GROUP BY application_name"
        )
    finally:
        await connection.close()
    return {row["name"]: row["n"] for row in rows}


async def redis_clients(url: str) -> int:
    client = aioredis.Redis.from_url(url.partition("?")[0])  # shoal's options stay out
    try:
        info = await client.info("clients")
    finally:
        await client.aclose()
    return int(info["connected_clients"]) - 1  # not this one


def sqlite_descriptors(url: str) -> int:
    path = Path(url.removeprefix("sqlite:///")).resolve()
    folder = Path("/proc/self/fd")
    return sum(1 for fd in folder.iterdir() if _points_at(fd, path))


def _points_at(fd: Path, path: Path) -> bool:
    try:
        return Path(os.readlink(fd)) == path
    except OSError:  # closed while we looked
        return False


async def wait_for_all(handles: list[TaskHandle[int]]) -> list[asyncio.Task[int]]:
    waits = [asyncio.create_task(h.result(timeout=300)) for h in handles]
    await asyncio.sleep(1.0)  # let every wait look once and settle on the listener
    assert not any(w.done() for w in waits)
    return waits


async def finish(url: str, waits: list[asyncio.Task[int]]) -> None:
    worker_app = echo_app(url)  # another app, another backend instance: another process's
    async with worker_app:
        await drain(worker_app, concurrency=50, timeout=240)
    results = await asyncio.wait_for(asyncio.gather(*waits), 120)
    assert results == list(range(WAITERS))


async def start(url: str) -> tuple[App, list[TaskHandle[int]]]:
    app = echo_app(url)
    await app.open()
    await app.backend.setup()
    handles = await app.get_task("echo").push_many([{"n": i} for i in range(WAITERS)])
    return app, handles


async def test_postgres_waiters_share_one_listen_connection(postgres_url: str) -> None:
    app, handles = await start(postgres_url)
    try:
        before = await postgres_connections(postgres_url)
        waits = await wait_for_all(handles)
        during = await postgres_connections(postgres_url)
        assert before.get("shoal-listener", 0) == 0
        assert during.get("shoal-listener") == 1  # one LISTEN connection for 1,000 waits
        pool = app.backend.settings.pool_max_size  # type: ignore[attr-defined]
        assert during.get("shoal", 0) <= pool
        await finish(postgres_url, waits)
    finally:
        await app.close()


async def results_subscribers(url: str, prefix: str) -> int:
    client = aioredis.Redis.from_url(url.partition("?")[0])
    try:
        [(_, count)] = await client.pubsub_numsub(f"{prefix}:results")
    finally:
        await client.aclose()
    return int(count)


async def test_redis_waiters_share_one_subscription(redis_url: str) -> None:
    app, handles = await start(redis_url)
    prefix = app.backend.prefix  # type: ignore[attr-defined]
    try:
        await app.backend.wait_for_work(["default"], 0.2)  # as a worker waits: for work only
        assert await results_subscribers(redis_url, prefix) == 0  # sent no one's results
        before = await redis_clients(redis_url)
        waits = await wait_for_all(handles)
        during = await redis_clients(redis_url)
        assert await results_subscribers(redis_url, prefix) == 1  # one for 1,000 waits
        # The listener's connection, and the few the looks borrowed in turn from the pool.
        assert during - before <= 1 + CONCURRENT_LOOKS
        await finish(redis_url, waits)
    finally:
        await app.close()


async def test_sqlite_waiters_share_one_watcher(sqlite_url: str) -> None:
    app, handles = await start(sqlite_url)
    try:
        before = sqlite_descriptors(sqlite_url)
        waits = await wait_for_all(handles)
        during = sqlite_descriptors(sqlite_url)
        assert during - before == 1  # the commit watcher's connection, one for every wait
        await finish(sqlite_url, waits)
    finally:
        await app.close()
