"""What only the SQLite backend has: migrations on a file, cross-connection wake-ups."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from shoal.backends import open_backend
from shoal.backends.sqlfiles import migrations
from shoal.backends.sqlite.watcher import CommitWatcher
from shoal.core.errors import ConfigurationError, SchemaMissing
from shoal.testing.contract import new_task, worker


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


async def test_without_inotify_commits_are_found_by_polling(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watcher's fallback where there is no inotify (macOS, Windows): a look every few
    milliseconds while a wait is on, the first one as the wait begins."""
    monkeypatch.setattr(CommitWatcher, "_notify_on_writes", lambda self: None)
    waiter_side, pusher_side = open_backend(sqlite_url), open_backend(sqlite_url)
    async with waiter_side, pusher_side:
        await waiter_side.setup()
        await waiter_side.wait_for_work(["default"], 0.05)  # the watcher is up
        assert await waiter_side.claim(["default"], "w1", 1, 30) == []
        await pusher_side.push([new_task()])  # between the empty claim and the wait
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(waiter_side.wait_for_work(["default"], 10), 2)
        assert loop.time() - started < 0.25


async def test_a_claim_waits_out_another_process_holding_the_write_lock(sqlite_url: str) -> None:
    """A claim first tries for the lock quickly, then leaves it to SQLite's busy handler:
    a writer that holds the lock for longer than the quick tries does not fail it."""
    async with open_backend(sqlite_url) as backend:
        await backend.setup()
        await backend.push([new_task()])
        holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        claiming = asyncio.create_task(backend.claim(["default"], "w1", 1, 30))
        await asyncio.sleep(0.2)
        assert not claiming.done()
        holder.execute("COMMIT")
        holder.close()
        assert len(await asyncio.wait_for(claiming, 5)) == 1


async def test_its_own_writes_do_not_wake_its_waiters(sqlite_url: str) -> None:
    """The watcher sees every commit to the file, the backend's own among them; a heartbeat
    (or an ack, or a claim) of the waiting worker itself is no news, and must not end the
    wait in an empty claim."""
    async with open_backend(sqlite_url) as backend:
        await backend.setup()
        await backend.wait_for_work(["default"], 0.05)  # the watcher is up
        assert await backend.claim(["default"], "w1", 1, 30) == []
        waiting = asyncio.create_task(backend.wait_for_work(["default"], 0.5))
        await asyncio.sleep(0.05)
        for n in range(3):
            await backend.heartbeat(worker(f"w{n}"), [], 30)
            await asyncio.sleep(0.05)
        assert not waiting.done()
        await waiting
