"""``sqlite:///path``: the embedded default, one file, no server.

Several worker processes on one machine may share the file. The database runs in WAL mode
(readers never block the writer) with ``synchronous=NORMAL`` (a commit survives a process
crash; a power cut may lose the last commits). Every state change is one statement or one
``BEGIN IMMEDIATE`` transaction, so claims are atomic across processes. Each backend
instance owns one connection, driven from one thread so the event loop never blocks on disk.

Wake-ups: a push through this instance wakes its waiters at once; other processes' commits
are seen by one watcher per instance that reads ``PRAGMA data_version`` when inotify reports
a write to the file (Linux), or every 5 ms while a wait is on elsewhere (``watcher.py`` says
why); the wait itself is the shared one (:mod:`shoal.backends.shared.wakeups`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from shoal.backends.base import Backend, OnConflict
from shoal.backends.shared.fencing import heartbeat_reply, refuse_lost
from shoal.backends.shared.finishes import Finishes
from shoal.backends.shared.idempotency import resolve
from shoal.backends.shared.reaping import Expired, judge, report_verdicts
from shoal.backends.shared.storable import check_storable
from shoal.backends.shared.wakeups import Wakeups
from shoal.backends.sqlfiles import migrations, queries
from shoal.backends.sqlite.admin import SQLiteAdmin
from shoal.backends.sqlite.limits import admitted, limited_due
from shoal.backends.sqlite.results import SQLiteResults
from shoal.backends.sqlite.retention import prune
from shoal.backends.sqlite.schedules import SQLiteSchedules
from shoal.backends.sqlite.stats import SQLiteStats
from shoal.backends.sqlite.support import (
    BUSY_TIMEOUT,
    data_version,
    held_keys,
    immediate,
    kept_rows,
    lease_item,
    row_of,
    statements,
    task_of,
    use_wal,
)
from shoal.backends.sqlite.throughput import SQLiteThroughput
from shoal.backends.sqlite.watcher import CommitWatcher
from shoal.core.errors import BackendUnavailable, ConfigurationError, SchemaMissing, ShoalError
from shoal.core.models import (
    Claim,
    Failure,
    HeartbeatReply,
    KeptValue,
    Lease,
    NewTask,
    ReapReport,
    WorkerInfo,
)
from shoal.core.retention import Retention, expiries

T = TypeVar("T")

_PACKAGE = "shoal.backends.sqlite"
"""Where this backend's queries.sql and migrations live."""
_SQL = queries(_PACKAGE)
_MINIMUM_SQLITE = (3, 35, 0)  # UPDATE ... FROM and RETURNING


def from_url(url: str) -> SQLiteBackend:
    path = url.removeprefix("sqlite://")
    if not path.startswith("/") or path == "/":
        raise ConfigurationError(
            f"{url!r} names no file: use sqlite:///relative.db or sqlite:////absolute/path.db"
        )
    return SQLiteBackend(Path(path[1:]))


class SQLiteBackend(
    SQLiteThroughput, SQLiteResults, SQLiteStats, SQLiteAdmin, SQLiteSchedules, Backend
):
    """The contract on one SQLite file. Its primitives are mixed in by concept: ``results.py``,
    ``stats.py``, ``admin.py``, ``schedules.py``; the leases' life is here."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self._connection: sqlite3.Connection | None = None
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._wakeups = Wakeups()
        self._finishes = Finishes()
        self._watcher = CommitWatcher(path, self._wakeups, self._finishes, self._foreign_commits)
        self._foreign_version: int | None = None  # PRAGMA data_version on our connection

    # -- plumbing ----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._thread is not None:
            return
        if sqlite3.sqlite_version_info < _MINIMUM_SQLITE:
            raise ConfigurationError(
                f"SQLite {sqlite3.sqlite_version} is too old: shoal needs 3.35 or newer"
            )
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="shoal-sqlite")
        await self._call(functools.partial(self._connect, create=False))

    def _connect(self, *, create: bool) -> sqlite3.Connection | None:
        """Connect to the file, on the backend's thread. Only :meth:`setup` creates it (and
        its folder): a command that only reads must say that a mistyped path does not
        exist, not leave an empty database there and report nothing in it."""
        if self._connection is not None or not (create or self.path.exists()):
            return self._connection
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT
            )
            connection.row_factory = sqlite3.Row
            use_wal(connection)
            connection.execute("PRAGMA synchronous = NORMAL")
        except (OSError, sqlite3.Error) as exc:
            raise BackendUnavailable(f"cannot open the database: {exc}", url=self.url) from exc
        self._connection = connection
        return connection

    async def _connection_to(self, *, create: bool = False) -> sqlite3.Connection:
        """The connection; a file created since :meth:`open` (by another process's
        ``shoal migrate``) is opened now."""
        connection = await self._call(functools.partial(self._connect, create=create))
        if connection is None:
            raise SchemaMissing(
                "the database file does not exist; run `shoal migrate` to create it",
                url=self.url,
            )
        return connection

    async def close(self) -> None:
        await self._watcher.stop()
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await self._call(connection.close)
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None

    async def _call(self, function: Callable[[], T]) -> T:
        if self._thread is None:
            raise BackendUnavailable("the backend is not open; call open() first", url=self.url)
        return await asyncio.get_running_loop().run_in_executor(self._thread, function)

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, create: bool = False) -> T:
        """Run ``work`` on the backend's thread, translating SQLite's errors."""
        connection = self._connection or await self._connection_to(create=create)

        def guarded() -> T:
            try:
                return work(connection)
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    raise SchemaMissing(url=self.url) from exc
                raise BackendUnavailable(str(exc), url=self.url) from exc

        return await self._call(guarded)

    # -- schema ------------------------------------------------------------------------------

    async def setup(self) -> None:
        def migrate(db: sqlite3.Connection) -> None:
            with immediate(db):
                db.execute(
                    "CREATE TABLE IF NOT EXISTS shoal_schema_version "
                    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
                )
                applied = {row[0] for row in db.execute("SELECT version FROM shoal_schema_version")}
                for migration in migrations(_PACKAGE):
                    if migration.version in applied:
                        continue
                    for statement in statements(migration.sql):
                        db.execute(statement)
                    db.execute(
                        "INSERT INTO shoal_schema_version VALUES (?, ?, ?)",
                        (migration.version, migration.name, time.time()),
                    )

        await self._run(migrate, create=True)

    async def verify_schema(self) -> None:
        latest = migrations(_PACKAGE)[-1]

        def current(db: sqlite3.Connection) -> int:
            row = db.execute("SELECT max(version) FROM shoal_schema_version").fetchone()
            return int(row[0] or 0)

        await self._connection_to()  # a missing file says so, not "schema version 0"
        try:
            version = await self._run(current)
        except SchemaMissing:
            version = 0
        if version < latest.version:
            raise SchemaMissing(
                f"the database is at schema version {version}, shoal needs {latest.version} "
                f"({latest.name}); run `shoal migrate`",
                url=self.url,
            )

    # -- producers ---------------------------------------------------------------------------

    async def push(
        self, tasks: Sequence[NewTask], *, on_conflict: OnConflict = OnConflict.RAISE
    ) -> list[str]:
        check_storable(tasks)
        now = time.time()

        def insert(db: sqlite3.Connection) -> list[str]:
            with immediate(db):
                batch = resolve(tasks, held_keys(db, tasks))
                ids = batch.reply(on_conflict)
                db.executemany(_SQL["insert"], [row_of(task, now) for task in batch.fresh])
                return ids

        ids = await self._run(insert)
        self._wakeups.work({task.queue for task in tasks})
        return ids

    # -- workers -----------------------------------------------------------------------------

    async def claim(
        self, queues: Sequence[str], worker_id: str, limit: int, lease_seconds: float
    ) -> list[Claim]:
        self._wakeups.claiming(queues)
        now = time.time()
        token = uuid.uuid4().hex

        def claim(db: sqlite3.Connection) -> list[sqlite3.Row]:
            # Per queue, the best `limit` tasks come straight off the index; the best of those
            # across queues are the batch. One write transaction: atomic across processes.
            with immediate(db, eager=True):
                if limited_due(db, queues, now):
                    return _lease(db, admitted(db, queues, limit, now))
                candidates = [
                    row
                    for queue in queues
                    for row in db.execute(
                        _SQL["claim_candidates"], {"queue": queue, "now": now, "limit": limit}
                    )
                ]
                candidates.sort(key=lambda row: (-row["priority"], row["run_at"], row["id"]))
                return _lease(db, [row["id"] for row in candidates[:limit]])

        def _lease(db: sqlite3.Connection, chosen: list[str]) -> list[sqlite3.Row]:
            if not chosen:
                return []
            arguments = {
                "ids": json.dumps(chosen),
                "worker_id": worker_id,
                "token": token,
                "expires_at": now + lease_seconds,
                "now": now,
            }
            return db.execute(_SQL["claim"], arguments).fetchall()

        rows = await self._run(claim)
        tasks = sorted((task_of(row) for row in rows), key=lambda t: (-t.priority, t.run_at, t.id))
        return [Claim(task, Lease(task.id, token, task.attempts)) for task in tasks]

    async def _fenced(
        self,
        query: str,
        items: list[list[Any]],
        values: Sequence[KeptValue] = (),
        failures: Sequence[Failure] = (),
    ) -> set[str]:
        """Apply ``query`` to the leases still held, keeping the results of those applied
        in the same transaction; returns the ids applied (the caller refuses the rest)."""
        arguments = {"now": time.time(), "items": json.dumps(items)}

        def apply(db: sqlite3.Connection) -> set[str]:
            with immediate(db):
                applied = {row[0] for row in db.execute(query, arguments)}
                db.executemany(_SQL["keep_result"], kept_rows(applied, values, failures))
                return applied

        if values or any(f.keep_until for f in failures):
            applied = await self._run(apply)
        else:  # nothing to keep: one statement is its own transaction
            rows = await self._run(lambda db: db.execute(query, arguments).fetchall())
            applied = {row[0] for row in rows}
        return applied

    async def ack(self, leases: Sequence[Lease], results: Sequence[KeptValue] = ()) -> None:
        items = [lease_item(lease) for lease in leases]
        applied = await self._fenced(_SQL["ack"], items, values=results)
        self._finishes.finished(r.task_id for r in results if r.task_id in applied)
        refuse_lost(leases, applied)

    async def fail(self, failures: Sequence[Failure]) -> None:
        items = [
            [
                *lease_item(f.lease),
                f.error,
                f.retry_at.timestamp() if f.retry_at else None,
                f.traceback,
            ]
            for f in failures
        ]
        leases = [f.lease for f in failures]
        applied = await self._fenced(_SQL["fail"], items, failures=failures)
        self._finishes.finished(
            f.lease.task_id for f in failures if f.retry_at is None and f.lease.task_id in applied
        )
        refuse_lost(leases, applied)

    async def release(self, leases: Sequence[Lease]) -> None:
        arguments = {"now": time.time(), "items": json.dumps([lease_item(x) for x in leases])}
        await self._run(lambda db: db.execute(_SQL["release"], arguments))
        self._wakeups.work(None)

    async def heartbeat(
        self, worker: WorkerInfo, leases: Sequence[Lease], lease_seconds: float
    ) -> HeartbeatReply:
        now = time.time()
        registration = {
            "id": worker.id,
            "host": worker.host,
            "pid": worker.pid,
            "queues": json.dumps(list(worker.queues)),
            "concurrency": worker.concurrency,
            "in_flight": worker.in_flight,
            "started_at": worker.started_at.timestamp(),
            "now": now,
            "version": worker.version,
        }
        extension = {
            "expires_at": now + lease_seconds,
            "items": json.dumps([lease_item(lease) for lease in leases]),
        }

        def beat(db: sqlite3.Connection) -> dict[str, str | None]:
            with immediate(db):
                db.execute(_SQL["upsert_worker"], registration)
                return {row[0]: row[1] for row in db.execute(_SQL["extend_leases"], extension)}

        return heartbeat_reply(leases, await self._run(beat))

    async def cancel_running(self, leases: Sequence[Lease]) -> None:
        items = [lease_item(lease) for lease in leases]
        applied = await self._fenced(_SQL["cancel_running"], items)
        self._finishes.finished(applied)
        refuse_lost(leases, applied)

    async def deregister(self, worker_id: str) -> None:
        await self._run(lambda db: db.execute(_SQL["deregister"], {"id": worker_id}))

    async def reap(
        self, *, worker_timeout: float, retention: Mapping[str, Retention] | None = None
    ) -> ReapReport:
        now = time.time()

        def reap(db: sqlite3.Connection) -> ReapReport:
            with immediate(db):
                db.execute(_SQL["forget_silent_workers"], {"cutoff": now - worker_timeout})
                expired = db.execute(_SQL["reap_expired"], {"now": now}).fetchall()
                verdicts = judge(Expired(*row) for row in expired)
                items = [[v.task_id, v.status, v.lease_expirations, v.error] for v in verdicts]
                db.execute(_SQL["reap_apply"], {"now": now, "verdicts": json.dumps(items)})
                db.execute(_SQL["expire_results"], {"now": now})
                return report_verdicts(verdicts)

        report = await self._run(reap)
        if report.requeued:
            self._wakeups.work(None)
        self._finishes.finished(report.dead)
        rules = list(expiries(retention or {}))
        if rules:
            await self._run(functools.partial(prune, rules=rules, now=time.time()))
        return report

    # -- observers ---------------------------------------------------------------------------

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        """Wait for a push through this instance, a commit by another connection, or the
        timeout; the caller's next claim is the look when the watcher was not trusted."""
        await self._watch_commits()
        with self._watcher.attending():
            await self._wakeups.wait_for_work(queues, timeout)

    async def _watch_commits(self) -> None:
        if self._connection is None:
            raise BackendUnavailable("the backend is not open; call open() first", url=self.url)
        if self._foreign_version is None:
            await self._foreign_commits()  # what this connection has seen, before watching
        self._watcher.start()

    async def _foreign_commits(self) -> bool:
        """Whether another connection committed since the last call: this connection's
        ``data_version`` changes with every commit but its own."""
        try:
            seen = await self._run(data_version)
        except ShoalError:  # cannot tell: a hint, and the claim finds out
            return True
        changed, self._foreign_version = seen != self._foreign_version, seen
        return changed
