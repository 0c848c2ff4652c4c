"""``postgresql://``: tasks in PostgreSQL, through asyncpg.

**URL.** ``postgresql://user:password@host:5432/db?schema=shoal&listen=true``. The options
below (see :class:`PostgresSettings`) are taken out of the query before connecting; any
other query parameter (``sslmode``, ``application_name``, ...) goes to asyncpg.

**Shared connections.** One backend serves any number of queues and apps over one asyncpg
pool and at most one extra connection, the LISTEN connection, opened on the first
:meth:`~PostgresBackend.wait_for_work`. Claims, acks and heartbeats are batched, so a
worker needs few connections: size ``pool_max_size`` for the concurrent *calls* (per worker
at most three: one claim, one batch of outcomes, one heartbeat or reap; plus producers), not
for the handler concurrency. Keep this pool apart from your web pool: a web pool exhausted under
load must not starve heartbeats (leases would expire and work would run twice). A call that
waits ``acquire_timeout`` seconds for a connection fails with :class:`BackendUnavailable`
naming the pool, never hangs.

**Transactional enqueue.** :meth:`~PostgresBackend.push_in_transaction` runs on the
caller's connection inside a savepoint of its open transaction: commit enqueues,
rollback enqueues nothing and wakes nobody (NOTIFY is delivered on commit only), and an
idempotency conflict rolls back the savepoint alone, leaving the caller's transaction usable.
The same holds on psycopg 3, SQLAlchemy 2 and Django connections, one adapter each in
:mod:`.callers`; sync ones through :meth:`~PostgresBackend.push_in_transaction_sync`, in the
caller's thread. Apps reach both with ``task.configure(connection=conn)``.

**Bloat.** A queue table is rewritten constantly, so the schema is built to keep its hot
part small. Every task sits in exactly one partial index (claimable, running, dead,
finished), so claims, stats and reaps read index entries of unfinished work only, however
many finished rows are kept. Heartbeats renew leases by changing unindexed columns of a
table with ``fillfactor = 80``: HOT updates that add no index entries. Autovacuum runs
after 1% of the rows changed. Retention (:mod:`.retention`) deletes finished tasks during
:meth:`~PostgresBackend.reap`, oldest first, in statements of at most 1,000 rows, so no long
transaction holds vacuum back. The ``retention`` URL option (seconds, default a week) is how
long done and cancelled tasks of a queue whose app declares no retention are kept;
``retention=0`` also deletes a task that succeeded at its ack.

**Clocks.** ``run_at`` comes from the producer's clock, leases and "due" from the
server's: keep hosts on NTP.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import asyncpg

from shoal.backends.base import PURGEABLE, UNKNOWN_ASKER, Backend, OnConflict, TransactionalPush
from shoal.backends.postgres.callers import caller_session
from shoal.backends.postgres.connect import Connections, PostgresSettings
from shoal.backends.postgres.enqueue import enqueue
from shoal.backends.postgres.limits import held
from shoal.backends.postgres.listener import Listener, ListenerHealth, ListenerState
from shoal.backends.postgres.retention import expire_results, prune
from shoal.backends.postgres.rows import affected, lease_columns, task_of
from shoal.backends.postgres.schedules import PostgresSchedules
from shoal.backends.postgres.sessions import AsyncpgSession, run_to_end
from shoal.backends.shared.fencing import heartbeat_reply, refuse_lost
from shoal.backends.shared.finishes import Finishes
from shoal.backends.shared.limiting import SCAN
from shoal.backends.shared.listing import TaskQuery, sql_page
from shoal.backends.shared.reaping import Expired, judge, report_verdicts
from shoal.backends.shared.results import outcome_of
from shoal.backends.shared.retention import PRUNE_BATCH
from shoal.backends.shared.storable import check_storable
from shoal.backends.shared.wakeups import Wakeups
from shoal.backends.sqlfiles import migrations, queries
from shoal.core.errors import (
    BackendUnavailable,
    IdempotencyConflict,
    SchemaMissing,
    TaskNotFound,
)
from shoal.core.models import (
    BackendHealth,
    Claim,
    Failure,
    HeartbeatReply,
    KeptValue,
    Lease,
    NewTask,
    QueueStats,
    ReapReport,
    Task,
    TaskResult,
    TaskStatus,
    WorkerInfo,
)
from shoal.core.retention import Retention, expiries

_PACKAGE = "shoal.backends.postgres"
"""Where this backend's queries.sql and migrations live."""


def from_url(url: str) -> PostgresBackend:
    """Build (not yet connect) a backend for a ``postgresql://`` URL."""
    return PostgresBackend(url)


class PostgresBackend(PostgresSchedules, Backend, TransactionalPush):
    """The contract on PostgreSQL: SKIP LOCKED claims, fenced leases, LISTEN/NOTIFY, and
    pushes inside a caller's transaction (the schedule primitives: ``schedules.py``)."""

    def __init__(self, url: str, settings: PostgresSettings | None = None) -> None:
        self._db = Connections(url, settings)
        self.url = self._db.url
        self.settings = self._db.settings
        self._channel = f"{self.settings.schema}.work"
        self._results_channel = f"{self.settings.schema}.results"
        self._sql = {name: self._render(text) for name, text in queries(_PACKAGE).items()}
        # Nothing finished is kept: a success is deleted by its ack instead of at a reap.
        self._ack_query = "ack_delete" if self.settings.retention == 0 else "ack"
        self._ack_keeping = self._sql["keep_values"].replace(
            "{ack}", self._sql[self._ack_query].rstrip(";")
        )
        self._wakeups = Wakeups()
        self._finishes = Finishes()
        self._listener: Listener | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        await self._db.open(self._sql["ping"])

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        await self._db.close()

    async def setup(self) -> None:
        """Create the schema or bring it up to date, under an advisory lock so that several
        processes may run it at once; each migration is recorded in ``schema_migrations``."""
        async with self._db.acquire("migrating") as conn, conn.transaction():
            await conn.execute(self._sql["lock_migrations"], self.settings.schema)
            await conn.execute(self._sql["bootstrap"])
            applied = {row["version"] for row in await conn.fetch(self._sql["applied_migrations"])}
            for migration in migrations(_PACKAGE):
                if migration.version not in applied:
                    await conn.execute(self._render(migration.sql))
                    await conn.execute(
                        self._sql["record_migration"], migration.version, migration.name
                    )

    async def verify_schema(self) -> None:
        async with self._db.acquire("verifying the schema") as conn:
            missing = [row["name"] for row in await conn.fetch(self._sql["missing_objects"])]
            applied: set[int] = set()
            if not any(name.endswith(".schema_migrations") for name in missing):
                rows = await conn.fetch(self._sql["applied_migrations"])
                applied = {row["version"] for row in rows}
        pending = [
            f"{m.version:04d}_{m.name}" for m in migrations(_PACKAGE) if m.version not in applied
        ]
        problems = [f"missing {', '.join(missing)}"] if missing else []
        if pending:
            problems.append(f"migrations not applied: {', '.join(pending)}")
        if problems:
            raise SchemaMissing(
                f"the PostgreSQL schema {self.settings.schema!r} is not ready "
                f"({'; '.join(problems)}): run `shoal migrate` (or call setup())",
                url=self.url,
            )

    async def health(self) -> BackendHealth:
        """The schema verified, and the state of this backend's LISTEN connection."""
        await self.verify_schema()
        listener = self.listener_health
        if listener.healthy:
            return BackendHealth({"listener": listener.state.value})
        return BackendHealth(
            {"listener": listener.state.value, "listener reconnects": str(listener.reconnects)},
            (
                f"the LISTEN connection is down ({listener.last_error}): wake-ups wait for "
                f"the poll interval ({self.settings.poll_interval:g}s) until it is back",
            ),
        )

    @property
    def listener_health(self) -> ListenerHealth:
        """State of the LISTEN connection, for ``shoal check``."""
        if not self.settings.listen:
            return ListenerHealth(ListenerState.DISABLED)
        if self._listener is None:
            return ListenerHealth(ListenerState.IDLE)
        return self._listener.health

    # -- producers ---------------------------------------------------------------------------

    async def push(
        self, tasks: Sequence[NewTask], *, on_conflict: OnConflict = OnConflict.RAISE
    ) -> list[str]:
        """Store ``tasks`` in one statement; see :meth:`Backend.push`."""
        check_storable(tasks)
        if not tasks:
            return []
        async with self._db.acquire("push") as conn:
            ids = await enqueue(
                AsyncpgSession(conn, savepoint=False), self._sql, tasks, on_conflict
            )
        self._wakeups.work({task.queue for task in tasks})  # committed: wake ours now
        return ids

    async def push_in_transaction(
        self,
        connection: object,
        tasks: Sequence[NewTask],
        *,
        on_conflict: OnConflict = OnConflict.RAISE,
    ) -> list[str]:
        """Store ``tasks`` as :meth:`push` does, in a savepoint of ``connection``'s open
        transaction: they become visible, and wake workers, when the caller commits.

        ``connection`` is an asyncpg connection (or one acquired from an asyncpg pool) inside
        ``async with connection.transaction():``, a psycopg ``AsyncConnection``, or a
        SQLAlchemy ``AsyncConnection`` or ``AsyncSession``, each in its transaction; any
        other raises :class:`ConfigurationError`, naming the kinds taken.
        """
        session = caller_session(connection, sync=False)
        check_storable(tasks)
        if not tasks:
            return []
        with self._db.translated("push"):
            return await enqueue(session, self._sql, tasks, on_conflict)

    def push_in_transaction_sync(
        self,
        connection: object,
        tasks: Sequence[NewTask],
        *,
        on_conflict: OnConflict = OnConflict.RAISE,
    ) -> list[str]:
        """:meth:`push_in_transaction` on a sync connection, in the calling thread: a
        psycopg ``Connection``, a SQLAlchemy ``Connection`` or ``Session``, or Django's
        connection (inside ``transaction.atomic()``). Needs neither :meth:`open` nor a loop.
        """
        session = caller_session(connection, sync=True)
        check_storable(tasks)
        if not tasks:
            return []
        with self._db.translated("push"):
            return run_to_end(enqueue(session, self._sql, tasks, on_conflict))

    # -- workers -----------------------------------------------------------------------------

    async def claim(
        self, queues: Sequence[str], worker_id: str, limit: int, lease_seconds: float
    ) -> list[Claim]:
        if limit <= 0 or not queues:
            return []
        names = sorted(set(queues))
        self._wakeups.claiming(names)
        token = uuid.uuid4().hex  # one token per claim: fences every task of this batch
        async with self._db.acquire("claim") as conn:
            rows = await conn.fetch(
                self._sql["claim" if len(names) > 1 else "claim_queue"],
                names,
                worker_id,
                limit,
                float(lease_seconds),
                token,
                SCAN,
            )
        return [Claim(task, Lease(task.id, token, task.attempts)) for task in map(task_of, rows)]

    async def ack(self, leases: Sequence[Lease], results: Sequence[KeptValue] = ()) -> None:
        if not leases:
            return
        async with self._db.acquire("ack") as conn:
            if results:
                rows = await conn.fetch(
                    self._ack_keeping,
                    *lease_columns(leases),
                    [r.task_id for r in results],
                    [r.value for r in results],
                    [r.expires_at for r in results],
                )
            else:
                rows = await conn.fetch(self._sql[self._ack_query], *lease_columns(leases))
        applied = {row["id"] for row in rows}
        self._finishes.finished(r.task_id for r in results if r.task_id in applied)
        refuse_lost(leases, applied)

    async def fail(self, failures: Sequence[Failure]) -> None:
        if not failures:
            return
        leases = [f.lease for f in failures]
        async with self._db.acquire("fail") as conn:
            rows = await conn.fetch(
                self._sql["fail"],
                *lease_columns(leases),
                [f.error for f in failures],
                [f.retry_at for f in failures],
                [f.traceback for f in failures],
                [f.keep_until for f in failures],
            )
        applied = {row["id"] for row in rows}
        self._finishes.finished(
            f.lease.task_id for f in failures if f.retry_at is None and f.lease.task_id in applied
        )
        refuse_lost(leases, applied)

    async def release(self, leases: Sequence[Lease]) -> None:
        if not leases:
            return
        async with self._db.acquire("release") as conn:
            await conn.execute(self._sql["release"], *lease_columns(leases))
        self._wakeups.work(None)

    async def heartbeat(
        self, worker: WorkerInfo, leases: Sequence[Lease], lease_seconds: float
    ) -> HeartbeatReply:
        async with self._db.acquire("heartbeat") as conn:
            rows = await conn.fetch(
                self._sql["heartbeat"],
                worker.id,
                worker.host,
                worker.pid,
                list(worker.queues),
                worker.concurrency,
                worker.in_flight,
                worker.started_at,
                *lease_columns(leases),
                float(lease_seconds),
                worker.version,
            )
        return heartbeat_reply(leases, {row["id"]: row["cancelled_by"] for row in rows})

    async def cancel_running(self, leases: Sequence[Lease]) -> None:
        if not leases:
            return
        async with self._db.acquire("cancel running") as conn:
            rows = await conn.fetch(self._sql["cancel_running"], *lease_columns(leases))
        applied = {row["id"] for row in rows}
        self._finishes.finished(applied)
        refuse_lost(leases, applied)

    async def deregister(self, worker_id: str) -> None:
        async with self._db.acquire("deregister") as conn:
            await conn.execute(self._sql["deregister"], worker_id)

    async def reap(
        self, *, worker_timeout: float, retention: Mapping[str, Retention] | None = None
    ) -> ReapReport:
        async with self._db.acquire("reap") as conn:
            async with conn.transaction():
                expired = await conn.fetch(self._sql["reap_expired"])
                verdicts = judge(Expired(*row) for row in expired)
                if verdicts:
                    await conn.execute(
                        self._sql["reap_apply"],
                        [v.task_id for v in verdicts],
                        [v.status.value for v in verdicts],
                        [v.lease_expirations for v in verdicts],
                        [v.error for v in verdicts],
                    )
                await conn.execute(self._sql["forget_workers"], float(worker_timeout))
            await expire_results(conn, self._sql["expire_results"])
            await prune(conn, self._sql["prune_finished"], list(expiries(retention or {})))
        report = report_verdicts(verdicts)
        if report.requeued:
            self._wakeups.work(None)
        self._finishes.finished(report.dead)
        return report

    @property
    def default_retention(self) -> Retention:
        """Done and cancelled tasks are kept for the URL's ``retention`` seconds."""
        kept = self.settings.retention
        return Retention(done=None if kept is None else timedelta(seconds=kept))

    # -- observers ---------------------------------------------------------------------------

    async def stats(self, queues: Sequence[str]) -> dict[str, QueueStats]:
        names = list(dict.fromkeys(queues))
        if not names:
            return {}
        async with self._db.acquire("stats") as conn:
            rows = await conn.fetch(self._sql["stats"], names)
        # The statement's columns are QueueStats' fields, in one row per queue asked for, and
        # what the held-back figure is computed from.
        found = {}
        for row in rows:
            fields = dict(row)
            limited, clock = fields.pop("limited"), fields.pop("clock")
            found[row["queue"]] = QueueStats(**fields, held_back=held(row["queue"], limited, clock))
        return found

    async def queues(self) -> list[str]:
        async with self._db.acquire("listing queues") as conn:
            return [row["queue"] for row in await conn.fetch(self._sql["queues"])]

    async def workers(self) -> list[WorkerInfo]:
        async with self._db.acquire("listing workers") as conn:
            rows = await conn.fetch(self._sql["workers"])
        return [WorkerInfo(**{**dict(row), "queues": tuple(row["queues"])}) for row in rows]

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        """Wait for a NOTIFY about ``queues``, a push through this backend, or the timeout;
        poll every ``poll_interval`` seconds while LISTEN is off or not yet trusted."""
        await self._start_listener()
        await self._wakeups.wait_for_work(
            queues,
            timeout,
            poll_interval=self.settings.poll_interval,
            work_due=lambda: self._work_due(queues),
        )

    async def _work_due(self, queues: Sequence[str]) -> bool:
        try:
            async with self._db.acquire("polling for work") as conn:
                due: bool = await conn.fetchval(self._sql["work_due"], sorted(set(queues)))
                return due
        except BackendUnavailable:
            return False  # the next claim reports the outage; here, just keep waiting

    # -- results -----------------------------------------------------------------------------

    async def result(self, task_id: str) -> TaskResult | None:
        async with self._db.acquire("reading a result") as conn:
            row = await conn.fetchrow(self._sql["result"], task_id)
        if row["kept_status"] is not None:
            return TaskResult(
                task_id,
                TaskStatus(row["kept_status"]),
                row["kept_value"],
                row["kept_error"],
                row["kept_traceback"],
                row["kept_expires_at"],
            )
        if row["id"] is None:
            raise TaskNotFound(task_id)
        return outcome_of(task_of(row))

    async def wait_for_result(self, task_id: str, timeout: float) -> TaskResult | None:
        """Wait for a NOTIFY on the results channel naming the task (on the LISTEN
        connection that wakes workers: one connection for every waiter), looking at the
        result after each, or the timeout."""
        await self._start_listener(results=True)
        return await self._finishes.wait_for_result(task_id, timeout, lambda: self.result(task_id))

    async def _start_listener(self, *, results: bool = False) -> None:
        """Listen for work, and for finished tasks too once ``results`` is asked for."""
        if not self.settings.listen or not self._db.is_open:
            return  # poll only; closed: polling reports that the backend is not open
        if self._listener is None:
            self._listener = Listener(
                self._db.connect,
                self._channel,
                self._wakeups,
                results=(self._results_channel, self._finishes),
                ping=self._sql["ping"],
                scrub=self._db.scrub,
            )
        if results:
            await self._listener.want_results()  # before start: a new one connects once
        self._listener.start()

    # -- admin -------------------------------------------------------------------------------

    async def get(self, task_id: str) -> Task | None:
        async with self._db.acquire("get") as conn:
            row = await conn.fetchrow(self._sql["get"], task_id)
        return None if row is None else task_of(row)

    async def list_page(self, query: TaskQuery) -> list[Task]:
        sql, arguments = sql_page(query, f"{self._render('{schema}')}.tasks", lambda n: f"${n}")
        async with self._db.acquire("listing tasks") as conn:
            rows = await conn.fetch(sql, *arguments)
        return [task_of(row) for row in rows]

    async def retry(self, task_id: str, *, run_at: datetime | None = None) -> bool:
        async with self._db.acquire("retry") as conn:
            try:
                row = await conn.fetchrow(self._sql["retry"], task_id, run_at)
            except asyncpg.UniqueViolationError as exc:
                # A newer task took the key this one held before it finished.
                held = await conn.fetchrow(self._sql["get"], task_id)
                raise IdempotencyConflict(held["queue"], [held["idempotency_key"]], 1) from exc
        if not row["found"]:
            raise TaskNotFound(task_id)
        return bool(row["revived"])

    async def retry_many(self, task_ids: Sequence[str]) -> int:
        async with self._db.acquire("retry") as conn:
            row = await conn.fetchrow(self._sql["retry_many"], list(task_ids))
        return int(row["revived"])

    async def cancel(self, task_id: str, *, by: str = UNKNOWN_ASKER) -> bool:
        async with self._db.acquire("cancel") as conn:
            row = await conn.fetchrow(self._sql["cancel"], task_id, by)
        if not row["found"]:
            raise TaskNotFound(task_id)
        if row["cancelled"]:
            self._finishes.finished([task_id])
        return bool(row["cancelled"])

    async def purge(self, *, queue: str | None, statuses: Sequence[TaskStatus]) -> int:
        doomed = sorted(str(s) for s in set(statuses) & PURGEABLE)
        if not doomed:
            return 0
        total = 0
        async with self._db.acquire("purge") as conn:
            while True:  # bounded: every batch deletes rows, or the loop ends
                deleted = affected(
                    await conn.execute(self._sql["purge"], doomed, queue, PRUNE_BATCH)
                )
                total += deleted
                if deleted < PRUNE_BATCH:
                    return total

    async def purge_tasks(self, task_ids: Sequence[str]) -> int:
        async with self._db.acquire("purge") as conn:
            return affected(await conn.execute(self._sql["purge_ids"], list(task_ids)))

    # -- plumbing ----------------------------------------------------------------------------

    def _render(self, sql: str) -> str:
        schema = self.settings.schema  # validated: [a-z_][a-z0-9_]*, safe to quote
        return (
            sql.replace("{schema}", f'"{schema}"')
            .replace("{channel}", f"'{self._channel}'")
            .replace("{results_channel}", f"'{self._results_channel}'")
        )
