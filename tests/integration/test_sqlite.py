"""What only the SQLite backend has: migrations on a file, cross-connection wake-ups."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from shoal.backends import open_backend
from shoal.backends.sqlfiles import migrations
from shoal.core.errors import ConfigurationError, SchemaMissing
from shoal.testing.contract import new_task


async def test_an_unmigrated_file_says_to_run_migrate(sqlite_url: str) -> None:
    async with open_backend(sqlite_url) as backend:
        with pytest.raises(SchemaMissing, match="run `shoal migrate`"):
            await backend.verify_schema()
        with pytest.raises(SchemaMissing, match="run `shoal migrate`"):
            await backend.push([new_task()])


async def test_migrations_build_the_schema_once_from_two_connections(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    first, second = open_backend(url), open_backend(url)
    async with first, second:
        await asyncio.gather(first.setup(), second.setup())
        await first.verify_schema()
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        versions = [row[0] for row in db.execute("SELECT version FROM shoal_schema_version")]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert versions == [m.version for m in migrations("shoal.backends.sqlite")]
    assert {"shoal_tasks", "shoal_workers", "shoal_tasks_claimable"} <= tables


async def test_a_push_from_another_connection_wakes_a_waiter(sqlite_url: str) -> None:
    waiter_side, pusher_side = open_backend(sqlite_url), open_backend(sqlite_url)
    async with waiter_side, pusher_side:
        await waiter_side.setup()
        loop = asyncio.get_running_loop()
        waiting = asyncio.create_task(waiter_side.wait_for_work(["default"], 10))
        await asyncio.sleep(0.1)
        started = loop.time()
        await pusher_side.push([new_task()])
        await asyncio.wait_for(waiting, 2)
        assert loop.time() - started < 0.5


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///"])
def test_a_url_without_a_file_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="names no file"):
        open_backend(url)
