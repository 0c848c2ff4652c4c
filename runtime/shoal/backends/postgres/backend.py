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
from datetime import timedelta

from shoal.backends.base import Backend, OnConflict, TransactionalPush
from shoal.backends.postgres.admin import PostgresAdmin
from shoal.backends.postgres.callers import caller_session
from shoal.backends.postgres.connect import Connections, PostgresSettings
from shoal.backends.postgres.enqueue import enqueue
from shoal.backends.postgres.listener import Listener, ListenerHealth, ListenerState
from shoal.backends.postgres.results import PostgresResults
from shoal.backends.postgres.retention import expire_results, prune
from shoal.backends.postgres.rows import lease_columns, task_of
from shoal.backends.postgres.schedules import PostgresSchedules
from shoal.backends.postgres.sessions import AsyncpgSession, run_to_end
from shoal.backends.postgres.stats import PostgresStats
from shoal.backends.postgres.throughput import PostgresThroughput
from shoal.backends.shared.fencing import heartbeat_reply, refuse_lost
from shoal.backends.shared.finishes import Finishes
from shoal.backends.shared.limiting import SCAN
from shoal.backends.shared.reaping import Expired, judge, report_verdicts
from shoal.backends.shared.storable import check_storable
from shoal.backends.shared.wakeups import Wakeups
from shoal.backends.sqlfiles import migrations, queries
from shoal.core.errors import BackendUnavailable, SchemaMissing
from shoal.core.models import (
    BackendHealth,
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

_PACKAGE = "shoal.backends.postgres"
"""Where this backend's queries.sql and migrations live."""


def from_url(url: str) -> PostgresBackend:
    """Build (not yet connect) a backend for a ``postgresql://`` URL."""
    return PostgresBackend(url)


class PostgresBackend(
    PostgresThroughput,
    PostgresResults,
    PostgresStats,
    PostgresAdmin,
    PostgresSchedules,
    Backend,
    TransactionalPush,
):
    """The contract on PostgreSQL: SKIP LOCKED claims, fenced leases, LISTEN/NOTIFY, and
    pushes inside a caller's transaction. Its primitives are mixed in by concept:
    ``results.py``, ``stats.py``, ``admin.py``, ``schedules.py``; the leases' life is here."""

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

    # -- plumbing ----------------------------------------------------------------------------

    def _render(self, sql: str) -> str:
        schema = self.settings.schema  # validated: [a-z_][a-z0-9_]*, safe to quote
        return (
            sql.replace("{schema}", f'"{schema}"')
            .replace("{channel}", f"'{self._channel}'")
            .replace("{results_channel}", f"'{self._results_channel}'")
        )
