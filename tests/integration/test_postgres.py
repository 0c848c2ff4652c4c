"""What only the postgresql:// backend promises, against a real PostgreSQL.

Matrix: none; every test gets a fresh database on the session's server
(``tests/servers/postgres.py``). The shared behaviour is in ``shoal.testing.contract``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from shoal import App, Context, Worker, WorkerSettings
from shoal.backends import OnConflict, open_backend
from shoal.backends.postgres import PostgresBackend
from shoal.backends.postgres.listener import ListenerState
from shoal.backends.sqlfiles import migrations, queries
from shoal.core.errors import (
    BackendUnavailable,
    ConfigurationError,
    IdempotencyConflict,
    LeaseLost,
    SchemaMissing,
)
from shoal.core.ids import new_id
from shoal.core.models import Failure, HealthStatus, NewTask, TaskStatus, utcnow
from tests.servers.postgres import PostgresServer


def task(queue: str = "default", *, key: str | None = None, delay: float = 0.0) -> NewTask:
    return NewTask(
        id=new_id(),
        queue=queue,
        name="tasks.work",
        payload=b"{}",
        run_at=utcnow() + timedelta(seconds=delay),
        max_attempts=1,
        idempotency_key=key,
    )


def with_options(url: str, **options: object) -> str:
    query = "&".join(f"{key}={value}" for key, value in options.items())
    return f"{url}?{query}" if query else url


@asynccontextmanager
async def backend_at(url: str, *, migrate: bool = True) -> AsyncIterator[PostgresBackend]:
    backend = open_backend(url)
    assert isinstance(backend, PostgresBackend)
    await backend.open()
    try:
        if migrate:
            await backend.setup()
        yield backend
    finally:
        await backend.close()


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    """Wait (bounded) until ``check()`` holds."""
    for _ in range(int(within / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def queued_behind_a_lock(admin: asyncpg.Connection) -> None:
    """Wait (bounded) until another session of this database waits on a lock."""
    query = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(200):
        if await admin.fetchval(query):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no call queued behind the lock in time")


async def test_unmigrated_database_says_to_run_migrate(postgres_url: str) -> None:
    async with backend_at(postgres_url, migrate=False) as backend:
        with pytest.raises(SchemaMissing) as missing:
            await backend.verify_schema()
        assert "shoal migrate" in str(missing.value)
        assert '"shoal".tasks' in str(missing.value)
        assert "0001_initial" in str(missing.value)
        for call in (
            backend.push([task()]),
            backend.claim(["default"], "w1", 5, 30),
            backend.stats(["default"]),
        ):
            with pytest.raises(SchemaMissing, match="shoal migrate"):
                await call


async def test_migrations_build_the_schema_even_from_concurrent_setups(
    postgres_url: str,
) -> None:
    async with (
        backend_at(postgres_url, migrate=False) as first,
        backend_at(postgres_url, migrate=False) as second,
    ):
        await asyncio.gather(first.setup(), second.setup(), first.setup())
        await first.verify_schema()
        await second.setup()
        await second.verify_schema()
    admin = await asyncpg.connect(postgres_url)
    try:
        versions = await admin.fetch("SELECT version FROM shoal.schema_migrations")
        assert sorted(row["version"] for row in versions) == [
            m.version for m in migrations("shoal.backends.postgres")
        ]
    finally:
        await admin.close()


async def test_schema_is_configurable(postgres_url: str) -> None:
    async with backend_at(with_options(postgres_url, schema="jobs")) as backend:
        await backend.verify_schema()
        [task_id] = await backend.push([task()])
        assert (await backend.stats(["default"]))["default"].ready == 1
    admin = await asyncpg.connect(postgres_url)
    try:
        assert await admin.fetchval("SELECT count(*) FROM jobs.tasks WHERE id = $1", task_id) == 1
        assert await admin.fetchval("SELECT to_regclass('shoal.tasks')") is None
    finally:
        await admin.close()


@asynccontextmanager
async def notifications(url: str) -> AsyncIterator[list[str]]:
    """Every payload NOTIFYed on the default channel while the block runs."""
    received: list[str] = []
    conn = await asyncpg.connect(url)
    await conn.add_listener("shoal.work", lambda *args: received.append(args[-1]))
    try:
        yield received
    finally:
        await conn.close()


async def test_rolled_back_enqueue_stores_nothing_and_wakes_nobody(postgres_url: str) -> None:
    async with (
        backend_at(postgres_url) as producer,
        backend_at(postgres_url) as worker,
        notifications(postgres_url) as heard,
    ):
        waiter = asyncio.create_task(worker.wait_for_work(["default"], 1.5))
        conn = await asyncpg.connect(postgres_url)
        try:
            tx = conn.transaction()
            await tx.start()
            [task_id] = await producer.push_in_transaction(conn, [task()])
            await asyncio.sleep(0.2)
            await tx.rollback()
        finally:
            await conn.close()
        started = asyncio.get_running_loop().time()
        await waiter
        assert asyncio.get_running_loop().time() - started > 0.8  # slept to its timeout
        assert await producer.get(task_id) is None
        assert heard == []


async def test_committed_enqueue_wakes_an_idle_worker(postgres_url: str) -> None:
    async with (
        backend_at(postgres_url) as producer,
        backend_at(postgres_url) as worker,
        notifications(postgres_url) as heard,
    ):
        await worker.wait_for_work(["default"], 0.3)  # the listener is up and trusted
        waiter = asyncio.create_task(worker.wait_for_work(["default"], 10))
        conn = await asyncpg.connect(postgres_url)
        try:
            async with conn.transaction():
                await producer.push_in_transaction(conn, [task(), task()])
                await producer.push_in_transaction(conn, [task("other")])
                await asyncio.sleep(0.3)
                assert not waiter.done()  # nothing is visible before the commit
            loop = asyncio.get_running_loop()
            committed = loop.time()
            await asyncio.wait_for(waiter, 2)
            assert loop.time() - committed < 1.0
        finally:
            await conn.close()
        await eventually(lambda: len(heard) == 2)
        assert sorted(heard) == ["default", "other"]  # one NOTIFY per batch, not per row
        assert len(await worker.claim(["default"], "w1", 10, 30)) == 2


async def test_one_notify_per_batch_not_per_row(postgres_url: str) -> None:
    async with backend_at(postgres_url) as backend, notifications(postgres_url) as heard:
        await backend.push([task(queue) for queue in ("a", "b") for _ in range(25)])
        await backend.push([task("c", delay=60)])
        await eventually(lambda: len(heard) == 2)
        await asyncio.sleep(0.2)
        assert heard == ["a\nb", "c"]


async def test_conflict_in_a_callers_transaction_leaves_it_usable(postgres_url: str) -> None:
    async with backend_at(postgres_url) as backend:
        [holder] = await backend.push([task(key="order-7")])
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
            async with conn.transaction():
                await conn.execute("INSERT INTO orders VALUES (1)")
                fresh = task()
                with pytest.raises(IdempotencyConflict) as caught:
                    await backend.push_in_transaction(conn, [fresh, task(key="order-7")])
                assert caught.value.conflicting_keys == ("order-7",)
                await conn.execute("INSERT INTO orders VALUES (2)")
                skipped = await backend.push_in_transaction(
                    conn, [task(key="order-7")], on_conflict=OnConflict.SKIP
                )
                assert skipped == [holder]
            assert await conn.fetchval("SELECT count(*) FROM orders") == 2
        finally:
            await conn.close()
        assert await backend.get(fresh.id) is None
        assert (await backend.stats(["default"]))["default"].ready == 1


async def test_push_in_transaction_rejects_a_foreign_connection(postgres_url: str) -> None:
    async with backend_at(postgres_url) as backend:
        with pytest.raises(ConfigurationError, match="asyncpg connection"):
            await backend.push_in_transaction(object(), [task()])


async def test_push_in_transaction_refuses_a_connection_outside_a_transaction(
    postgres_url: str,
) -> None:
    async with backend_at(postgres_url) as backend:
        conn = await asyncpg.connect(postgres_url)
        try:
            with pytest.raises(ConfigurationError, match="transaction open"):
                await backend.push_in_transaction(conn, [task()])
        finally:
            await conn.close()
        assert (await backend.stats(["default"]))["default"].ready == 0


async def test_an_apps_configured_connection_enqueues_in_its_transaction(
    postgres_url: str,
) -> None:
    app = App(postgres_url)

    @app.task
    async def send(to: str) -> None: ...

    async with backend_at(postgres_url) as backend:
        app.use_backend(backend)
        pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                async with conn.transaction():
                    kept = await send.configure(connection=conn).push(to="a@example.com")
                    many = await send.configure(connection=conn).push_many([{"to": "b"}])
                tx = conn.transaction()
                await tx.start()
                dropped = await send.configure(connection=conn).push(to="c@example.com")
                await tx.rollback()
        finally:
            await pool.close()
        assert {t.id for t in await backend.list_tasks()} == {kept.id, *(h.id for h in many)}
        assert await backend.get(dropped.id) is None


def password_of(url: str) -> str:
    password = urlsplit(url).password
    assert password
    return password


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda server: server.url("postgres", password="wr0ng-s3cret"), id="auth"),
        pytest.param(lambda server: server.url("no_such_db"), id="database"),
        pytest.param(
            lambda server: server.url().replace(f":{server.port}/", ":1/"), id="unreachable"
        ),
    ],
)
async def test_connection_failures_are_typed_and_hide_the_password(
    postgres_server: PostgresServer, broken: Callable[[PostgresServer], str]
) -> None:
    url = with_options(broken(postgres_server), connect_timeout=5)
    backend = open_backend(url)
    with pytest.raises(BackendUnavailable) as caught:
        await backend.open()
    message = str(caught.value)
    assert password_of(url) not in message and postgres_server.password not in message
    assert "***" in message  # the URL is named, redacted
    assert isinstance(caught.value.__cause__, Exception)
    await backend.close()


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda url: with_options(url, pool_max_size="many"), id="size"),
        pytest.param(lambda url: with_options(url, listen="maybe"), id="listen"),
        pytest.param(lambda url: with_options(url, schema="Robert'); --"), id="schema"),
        pytest.param(lambda url: url.replace("@127.0.0.1:", "@127.0.0.1:port"), id="port"),
    ],
)
def test_bad_urls_are_configuration_errors(
    postgres_server: PostgresServer, broken: Callable[[str], str]
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_backend(broken(postgres_server.url()))
    assert postgres_server.password not in str(caught.value)
    assert "***" in str(caught.value)


async def test_an_exhausted_pool_fails_fast_naming_the_pool(postgres_url: str) -> None:
    url = with_options(postgres_url, pool_max_size=1, acquire_timeout=0.3)
    async with backend_at(url) as backend:
        blocker = await asyncpg.connect(postgres_url)
        try:
            held = blocker.transaction()
            await held.start()
            # An uncommitted task holding the key makes the push wait, on the pool's only
            # connection, until this transaction ends.
            await blocker.execute(
                "INSERT INTO shoal.tasks (id, queue, name, payload, run_at, max_attempts,"
                " idempotency_key) VALUES ($1, 'default', 'x', '', now(), 1, 'k')",
                new_id(),
            )
            stuck = asyncio.create_task(backend.push([task(key="k")]))
            await asyncio.sleep(0.2)
            with pytest.raises(BackendUnavailable, match="pool_max_size=1") as caught:
                await asyncio.wait_for(backend.stats(["default"]), 2)
            assert "shoal pool" in str(caught.value) and "***" in str(caught.value)
            await held.rollback()
        finally:
            await blocker.close()
        assert len(await asyncio.wait_for(stuck, 5)) == 1


async def listener_connections(admin: Any) -> int:
    count: int = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'shoal-listener' AND datname = current_database()"
    )
    return count


async def test_polling_covers_a_dead_listener_until_it_reconnects(postgres_url: str) -> None:
    database = urlsplit(postgres_url).path.lstrip("/")
    admin = await asyncpg.connect(postgres_url.replace(f"/{database}", "/postgres"))
    async with (
        backend_at(with_options(postgres_url, poll_interval=0.2)) as worker,
        backend_at(with_options(postgres_url, listen="false")) as producer,
    ):
        try:
            await worker.wait_for_work(["default"], 0.3)
            await eventually(lambda: worker.listener_health.state is ListenerState.LISTENING)
            # Kill the listener and keep it out: the database refuses new connections.
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'shoal-listener' AND datname = $1",
                database,
            )
            assert killed == 1
            await eventually(lambda: worker.listener_health.state is ListenerState.RECONNECTING)
            assert not worker.listener_health.healthy
            degraded = await worker.health()  # the pool's connections still serve
            assert degraded.status is HealthStatus.DEGRADED
            assert degraded.details["listener"] == "reconnecting"
            assert "wake-ups wait for the poll interval (0.2s)" in degraded.warnings[0]
            waiter = asyncio.create_task(worker.wait_for_work(["default"], 10))
            await asyncio.sleep(0.3)
            await producer.push([task()])
            await asyncio.wait_for(waiter, 2)  # found by polling
        finally:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            await admin.close()
        await eventually(lambda: worker.listener_health.state is ListenerState.LISTENING, 15)
        health = worker.listener_health
        assert health.healthy and health.reconnects >= 1 and health.last_error
        assert password_of(postgres_url) not in health.last_error
        assert (await worker.health()).status is HealthStatus.OK


async def test_poll_only_mode_needs_no_listener(postgres_url: str) -> None:
    url = with_options(postgres_url, listen="false", poll_interval=0.1)
    async with backend_at(url) as worker, backend_at(url) as producer:
        assert worker.listener_health.state is ListenerState.DISABLED
        waiter = asyncio.create_task(worker.wait_for_work(["default"], 10))
        await asyncio.sleep(0.3)
        assert not waiter.done()
        await producer.push([task()])
        await asyncio.wait_for(waiter, 1)
        admin = await asyncpg.connect(postgres_url)
        try:
            assert await listener_connections(admin) == 0
        finally:
            await admin.close()


async def test_stats_answer_for_fifty_queues_in_one_statement(postgres_url: str) -> None:
    names = [f"q{i:02d}" for i in range(50)]
    async with backend_at(postgres_url) as backend:
        batch = [task(name) for i, name in enumerate(names) for _ in range(i % 4)]
        batch += [task(name, delay=600) for name in names[:10]]
        await backend.push(batch)
        running = await backend.claim(names[:5], "w1", 3, 30)
        await backend.fail([Failure(running[0].lease, "boom", None)])
        stats = await backend.stats([*names, "absent"])
        assert list(stats) == [*names, "absent"]
        for i, name in enumerate(names):
            ready = i % 4
            taken = sum(1 for claim in running if claim.task.queue == name)
            dead = int(name == running[0].task.queue)
            assert (stats[name].ready, stats[name].running, stats[name].dead) == (
                ready - taken,
                taken - dead,
                dead,
            ), name
            assert stats[name].scheduled == (1 if i < 10 else 0)
            assert (stats[name].oldest_ready_age is None) == (ready - taken == 0)
        assert stats["absent"].ready == 0

        # The statement has an index path for every count: it never reads finished rows.
        sql = queries("shoal.backends.postgres")["stats"].replace("{schema}", '"shoal"')
        admin = await asyncpg.connect(postgres_url)
        try:
            async with admin.transaction():
                await admin.execute("SET LOCAL enable_seqscan = off")
                plan = await admin.fetch(f"EXPLAIN {sql}", names)
            text = "\n".join(row[0] for row in plan)
            assert "Seq Scan on tasks" not in text
            for index in ("tasks_claimable", "tasks_running", "tasks_dead"):
                assert index in text
        finally:
            await admin.close()


async def test_retention_zero_deletes_successes_at_their_ack_and_keeps_the_dead(
    postgres_url: str,
) -> None:
    async with backend_at(with_options(postgres_url, retention=0)) as backend:
        await backend.push([task(), task(), task(delay=60)])
        done, failed = await backend.claim(["default"], "w1", 2, 30)
        await backend.ack([done.lease])
        assert await backend.get(done.task.id) is None  # at once, not at the next reap
        with pytest.raises(LeaseLost):
            await backend.ack([done.lease])  # a replayed or late ack is still fenced
        await backend.fail([Failure(failed.lease, "fatal", None)])
        [scheduled] = await backend.list_tasks(statuses=[TaskStatus.QUEUED])
        assert await backend.cancel(scheduled.id)
        await asyncio.sleep(0.01)
        await backend.reap(worker_timeout=60, retention={"default": backend.default_retention})
        assert await backend.get(scheduled.id) is None  # cancelled: gone at the reap
        dead = await backend.get(failed.task.id)
        assert dead is not None and dead.status is TaskStatus.DEAD  # kept for 30 days
        assert await backend.queues() == ["default"]


async def test_queues_lists_every_status_through_the_partial_indexes(postgres_url: str) -> None:
    async with backend_at(postgres_url) as backend:
        await backend.push([task("done"), task("dead"), task("running"), task("queued")])
        await backend.push([task("cancelled", delay=60)])
        for name in ("done", "dead", "running"):
            [claim] = await backend.claim([name], "w1", 1, 30)
            if name == "done":
                await backend.ack([claim.lease])
            elif name == "dead":
                await backend.fail([Failure(claim.lease, "fatal", None)])
        [cancelled] = await backend.list_tasks(queue="cancelled")
        assert await backend.cancel(cancelled.id)
        assert await backend.queues() == ["cancelled", "dead", "done", "queued", "running"]


async def test_a_restart_fails_calls_as_unavailable_and_the_backend_heals(
    restartable_postgres: PostgresServer,
) -> None:
    server = restartable_postgres
    database = server.create_database()
    url = with_options(server.url(database), poll_interval=0.2, pool_min_size=3)
    try:
        async with backend_at(url) as backend:
            [task_id] = await backend.push([task()])
            await backend.wait_for_work(["other"], 0.3)
            await eventually(lambda: backend.listener_health.state is ListenerState.LISTENING)
            admin = await asyncpg.connect(server.url(database))
            try:
                # A call in flight when the server goes down: it waits on a lock.
                await admin.execute("BEGIN; LOCK TABLE shoal.tasks IN ACCESS EXCLUSIVE MODE")
                stuck = asyncio.create_task(backend.stats(["default"]))
                # Restart only once the call is in flight (queued behind the lock): a call
                # sent after the restart would simply succeed on a fresh connection.
                await queued_behind_a_lock(admin)
                await asyncio.to_thread(server.restart)
            finally:
                admin.terminate()
            with pytest.raises(BackendUnavailable) as caught:
                await asyncio.wait_for(stuck, 5)
            assert server.password not in str(caught.value) and "***" in str(caught.value)

            # Every pooled connection died with the server. Each call now either works
            # (the pool reconnects) or fails as unavailable: never a raw driver error.
            outcomes = []
            for _ in range(50):
                try:
                    claims = await backend.claim(["default"], "w1", 5, 30)
                    outcomes.append("ok")
                    break
                except BackendUnavailable:
                    outcomes.append("unavailable")
                    await asyncio.sleep(0.1)
            assert outcomes[-1] == "ok", outcomes
            assert [claim.task.id for claim in claims] == [task_id]
            await backend.ack([claims[0].lease])
            await eventually(lambda: backend.listener_health.state is ListenerState.LISTENING, 15)
            assert backend.listener_health.reconnects >= 1
    finally:
        server.drop_database(database)


async def test_two_apps_share_one_pool_and_each_worker_sees_only_its_queues(
    postgres_url: str,
) -> None:
    ran: dict[str, list[str]] = {}  # worker id -> the tasks it ran
    billing, mail = App(), App()

    def note(context: Context, what: str) -> None:
        ran.setdefault(context.worker_id, []).append(what)

    @billing.task(queue="invoices")
    async def invoice(context: Context, n: int) -> None:
        note(context, f"invoice-{n}")

    @billing.task(queue="refunds")
    async def refund(context: Context, n: int) -> None:
        note(context, f"refund-{n}")

    @mail.task(queue="outbox")
    async def send(context: Context, subject: str) -> None:
        note(context, f"send-{subject}")

    async with backend_at(with_options(postgres_url, poll_interval=0.1)) as shared:
        for app in (billing, mail):
            app.use_backend(shared)  # one pool and one listener for every queue of both apps
        settings = WorkerSettings(concurrency=4, poll_interval=0.05)
        billing_worker, mail_worker = Worker(billing, settings), Worker(mail, settings)
        running = [asyncio.create_task(billing_worker.run())]
        admin = await asyncpg.connect(postgres_url)
        try:
            await send.push_many([{"subject": str(i)} for i in range(20)])
            await invoice.push_many([{"n": i} for i in range(20)])
            await refund.push_many([{"n": i} for i in range(20)])
            await eventually(lambda: len(ran.get(billing_worker.id, [])) == 40)
            # The mail app's work waits: the billing worker never claims another app's queue.
            assert (await shared.stats(["outbox"]))["outbox"].ready == 20

            running.append(asyncio.create_task(mail_worker.run()))
            await eventually(lambda: len(ran.get(mail_worker.id, [])) == 20)
            registered = {w.id: w.queues for w in await shared.workers()}
            assert registered[billing_worker.id] == ("invoices", "refunds")
            assert registered[mail_worker.id] == ("outbox",)
            connections: dict[str, int] = dict(
                await admin.fetch(  # type: ignore[arg-type]
                    "SELECT application_name, count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " GROUP BY application_name"
                )
            )
            assert connections["shoal-listener"] == 1
            assert connections["shoal"] <= shared.settings.pool_max_size
            assert set(connections) == {"shoal", "shoal-listener"}
        finally:
            await admin.close()
            for worker in (billing_worker, mail_worker):
                worker.stop()
            await asyncio.gather(*running)
        assert sorted(ran[billing_worker.id]) == sorted(
            [f"invoice-{i}" for i in range(20)] + [f"refund-{i}" for i in range(20)]
        )
        assert sorted(ran[mail_worker.id]) == sorted(f"send-{i}" for i in range(20))
        assert await shared.list_tasks(statuses=[TaskStatus.DEAD, TaskStatus.QUEUED]) == []


@pytest.mark.parametrize("queues", [["a"], ["a", "b"]], ids=["one queue", "several queues"])
async def test_both_claim_statements_take_the_best_due_tasks_first(
    postgres_url: str, queues: list[str]
) -> None:
    """A worker of one queue claims through its own statement (``claim_queue``), one of
    several through ``claim``: both keep priority first, then FIFO, due tasks only."""
    async with backend_at(postgres_url) as backend:
        low, high, later = task("a"), task("a"), task("a", delay=60)
        high = dataclasses.replace(high, priority=5)
        other = dataclasses.replace(task("b"), priority=1)
        await backend.push([low, later, high, other])
        claims = await backend.claim(queues, "w1", 10, 30)
        expected = [high.id, other.id, low.id] if len(queues) > 1 else [high.id, low.id]
        assert [claim.task.id for claim in claims] == expected
        assert len({claim.lease.token for claim in claims}) == 1  # one token fences the batch
        assert await backend.claim(queues, "w2", 10, 30) == []
