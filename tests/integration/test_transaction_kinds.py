"""Enqueue inside a caller's transaction, on every kind of connection shoal joins.

Matrix: asyncpg, psycopg 3 (sync and async), SQLAlchemy 2 (sync and async, each as a
Connection and as a Session; over psycopg and over asyncpg) and Django's connection inside
``transaction.atomic()`` (``tests/integration/callers.py``), each against the real
PostgreSQL of the test fixtures: a fresh database per test, and for Django, whose settings
are configured once per process, one database with a fresh shoal schema per test. Each
kind shows commit (the tasks are stored and a blocked ``wait_for_work`` returns promptly),
rollback (nothing stored, no NOTIFY), an idempotency conflict that leaves the caller's
transaction usable, the refusal of a connection outside any transaction, and the app's
``task.configure(connection=...)``. Then, once: unknown connections, driver errors, and sync
pushes from several threads at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import django
import psycopg
import pytest
from django.conf import settings
from django.db import connections

from shoal import App
from shoal.backends import OnConflict, open_backend
from shoal.backends.postgres import PostgresBackend
from shoal.core.errors import (
    BackendError,
    ConfigurationError,
    IdempotencyConflict,
    SchemaMissing,
)
from shoal.core.ids import new_id
from shoal.core.models import NewTask, utcnow
from tests.integration.callers import KINDS, Caller, DjangoCaller
from tests.servers.postgres import SUPERUSER, PostgresServer


def task(queue: str = "default", *, key: str | None = None) -> NewTask:
    return NewTask(
        id=new_id(),
        queue=queue,
        name="tasks.work",
        payload=b'{"n": 1}',
        run_at=utcnow() - timedelta(seconds=1),
        max_attempts=3,
        idempotency_key=key,
        metadata={"origin": "transaction"},
    )


def with_options(url: str, **options: object) -> str:
    query = "&".join(f"{key}={value}" for key, value in options.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


@dataclass(frozen=True)
class Target:
    """Where one test's caller connects, and the shoal backend on the same database."""

    kind: type[Caller]
    database_url: str
    backend_url: str
    channel: str

    def caller(self, *, transaction: bool = True) -> Caller:
        return self.kind(self.database_url, transaction=transaction)


@pytest.fixture(scope="session")
def django_database(postgres_server: PostgresServer) -> Iterator[str]:
    """Django configured once for the session, on a database of its own (its URL)."""
    name = postgres_server.create_database()
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": name,
                "USER": SUPERUSER,
                "PASSWORD": postgres_server.password,
                "HOST": "127.0.0.1",
                "PORT": str(postgres_server.port),
            },
            "lite": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        },
        USE_TZ=True,
    )
    django.setup()
    yield postgres_server.url(name)
    connections.close_all()
    postgres_server.drop_database(name)


@pytest.fixture(params=KINDS, ids=[kind.name for kind in KINDS])
def target(request: pytest.FixtureRequest, postgres_server: PostgresServer) -> Iterator[Target]:
    kind: type[Caller] = request.param
    if kind is not DjangoCaller:
        url: str = request.getfixturevalue("postgres_url")
        yield Target(kind, url, url, "shoal.work")
        return
    url = request.getfixturevalue("django_database")
    schema = f"t_{secrets.token_hex(6)}"
    yield Target(kind, url, with_options(url, schema=schema), f"{schema}.work")
    postgres_server.psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE", urlpath(url))


def urlpath(url: str) -> str:
    return url.rsplit("/", 1)[1]


@asynccontextmanager
async def backend_at(url: str) -> AsyncIterator[PostgresBackend]:
    backend = open_backend(url)
    assert isinstance(backend, PostgresBackend)
    await backend.open()
    try:
        await backend.setup()
        yield backend
    finally:
        await backend.close()


@asynccontextmanager
async def opened(caller: Caller) -> AsyncIterator[Caller]:
    await caller.open()
    try:
        yield caller
    finally:
        await caller.close()


@asynccontextmanager
async def notifications(url: str, channel: str) -> AsyncIterator[list[str]]:
    """Every payload NOTIFYed on ``channel`` while the block runs."""
    received: list[str] = []
    conn = await asyncpg.connect(url)
    await conn.add_listener(channel, lambda *args: received.append(args[-1]))
    try:
        yield received
    finally:
        await conn.close()


async def test_commit_enqueues_and_wakes_a_waiting_worker(target: Target) -> None:
    # Polling every minute: a prompt return can only be the NOTIFY of the commit.
    worker_url = with_options(target.backend_url, poll_interval=60)
    async with backend_at(target.backend_url) as producer, backend_at(worker_url) as worker:
        await worker.wait_for_work(["default"], 0.3)  # the listener is up and trusted
        waiter = asyncio.create_task(worker.wait_for_work(["default"], 60))
        async with opened(target.caller()) as caller:
            ids = await caller.push(producer, [task(), task()])
            [other] = await caller.push(producer, [task("other")])
            await asyncio.sleep(0.3)
            assert not waiter.done()  # nothing is visible, nobody is woken, before commit
            assert await producer.get(ids[0]) is None
            loop = asyncio.get_running_loop()
            await caller.end(commit=True)
            committed = loop.time()
            await asyncio.wait_for(waiter, 10)
            assert loop.time() - committed < 5.0
        claimed = await worker.claim(["default", "other"], "w1", 10, 30)
        assert sorted(claim.task.id for claim in claimed) == sorted([*ids, other])
        stored = await producer.get(ids[0])
        assert stored is not None
        assert (stored.payload, stored.metadata) == (b'{"n": 1}', {"origin": "transaction"})


async def test_rollback_enqueues_nothing_and_wakes_nobody(target: Target) -> None:
    async with (
        backend_at(target.backend_url) as producer,
        backend_at(target.backend_url) as worker,
        notifications(target.database_url, target.channel) as heard,
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiter = asyncio.create_task(worker.wait_for_work(["default"], 2.0))
        async with opened(target.caller()) as caller:
            [task_id] = await caller.push(producer, [task()])
            await caller.end(commit=False)
        await waiter
        assert loop.time() - started > 1.5  # it slept to its timeout: no wake-up came
        assert await producer.get(task_id) is None
        assert (await producer.stats(["default"]))["default"].ready == 0
        assert heard == []


async def test_a_conflict_leaves_the_callers_transaction_usable(target: Target) -> None:
    orders = f"orders_{secrets.token_hex(4)}"
    async with backend_at(target.backend_url) as backend:
        [holder] = await backend.push([task(key="order-7")])
        async with opened(target.caller()) as caller:
            await caller.sql(f"CREATE TABLE {orders} (id int PRIMARY KEY)")
            await caller.sql(f"INSERT INTO {orders} VALUES (1)")
            fresh = task()
            with pytest.raises(IdempotencyConflict) as caught:
                await caller.push(backend, [fresh, task(key="order-7")])
            assert caught.value.conflicting_keys == ("order-7",)
            await caller.sql(f"INSERT INTO {orders} VALUES (2)")
            skipped = await caller.push(backend, [task(key="order-7")], OnConflict.SKIP)
            assert skipped == [holder]
            [kept] = await caller.push(backend, [task(key="order-8")])
            await caller.end(commit=True)
        admin = await asyncpg.connect(target.database_url)
        try:
            assert await admin.fetchval(f"SELECT count(*) FROM {orders}") == 2
        finally:
            await admin.close()
        assert await backend.get(fresh.id) is None
        assert await backend.get(kept) is not None
        assert (await backend.stats(["default"]))["default"].ready == 2


async def test_a_connection_outside_any_transaction_is_refused(target: Target) -> None:
    async with backend_at(target.backend_url) as backend:
        async with opened(target.caller(transaction=False)) as caller:
            with pytest.raises(ConfigurationError, match="transaction open"):
                await caller.push(backend, [task()])
            with pytest.raises(ConfigurationError, match="transaction open"):
                await caller.push(backend, [task(key="k")], OnConflict.SKIP)
        assert (await backend.stats(["default"]))["default"].ready == 0


async def test_a_push_of_the_other_kind_names_the_right_call(target: Target) -> None:
    async with backend_at(target.backend_url) as backend, opened(target.caller()) as caller:
        if caller.sync:
            with pytest.raises(ConfigurationError, match=r"is a sync connection.*push_sync"):
                await backend.push_in_transaction(caller.connection, [task()])
        else:
            with pytest.raises(ConfigurationError, match=r"is an async connection.*await"):
                backend.push_in_transaction_sync(caller.connection, [task()])
        await caller.end(commit=True)
        assert (await backend.stats(["default"]))["default"].ready == 0


async def test_an_apps_configured_connection_joins_the_transaction(target: Target) -> None:
    app = App(target.backend_url)  # never opened: a push on a caller's connection needs no pool

    @app.task
    async def send(to: str) -> None: ...

    async with backend_at(target.backend_url) as backend:
        async with opened(target.caller()) as caller:
            configured = send.configure(connection=caller.connection)
            kept = await caller.push_app(configured, [{"to": "a@example.com"}, {"to": "b"}])
            await caller.end(commit=True)
        async with opened(target.caller()) as caller:
            configured = send.configure(connection=caller.connection)
            dropped = await caller.push_app(configured, [{"to": "c@example.com"}])
            await caller.end(commit=False)
        assert {t.id for t in await backend.list_tasks()} == set(kept)
        assert await backend.get(dropped[0]) is None


async def test_unknown_connections_are_refused_naming_the_kinds_taken(
    postgres_url: str, django_database: str
) -> None:
    async with backend_at(postgres_url) as backend:
        conn = await psycopg.AsyncConnection.connect(postgres_url)
        try:
            for foreign in (object(), conn.cursor()):
                with pytest.raises(ConfigurationError, match="psycopg 3 Connection") as refused:
                    await backend.push_in_transaction(foreign, [task()])
                assert "SQLAlchemy" in str(refused.value)
                assert "django.db.connection" in str(refused.value)
        finally:
            await conn.close()
        with pytest.raises(ConfigurationError, match="is to sqlite"):
            backend.push_in_transaction_sync(connections["lite"], [task()])
        assert (await backend.stats(["default"]))["default"].ready == 0


async def test_driver_errors_come_out_as_shoal_errors(postgres_url: str) -> None:
    unmigrated = postgres_url
    backend = open_backend(unmigrated)
    assert isinstance(backend, PostgresBackend)
    with psycopg.connect(unmigrated) as conn:  # no schema: `shoal migrate` never ran here
        with pytest.raises(SchemaMissing, match="shoal migrate"):
            backend.push_in_transaction_sync(conn, [task()])
        conn.rollback()
    async with backend_at(unmigrated) as backend:
        [taken] = await backend.push([task()])
        again = dataclasses.replace(task(), id=taken, payload=b'{"card": "4111-secret"}')
        with psycopg.connect(unmigrated) as conn:
            with pytest.raises(BackendError, match="UniqueViolation") as failed:
                backend.push_in_transaction_sync(conn, [again])
            assert "4111-secret" not in str(failed.value)
            assert not isinstance(failed.value, IdempotencyConflict)
            conn.rollback()


async def test_threads_push_on_their_own_connections_through_one_backend(
    postgres_url: str,
) -> None:
    app = App(postgres_url)

    @app.task
    def send(to: str) -> None: ...

    def producer(n: int) -> list[str]:
        with psycopg.connect(postgres_url) as conn:  # commits at the end of the block
            configured = send.configure(connection=conn)
            return [configured.push_sync(to=f"{n}-{i}@example.com").id for i in range(25)]

    async with backend_at(postgres_url) as backend:
        pushed = await asyncio.gather(*(asyncio.to_thread(producer, n) for n in range(4)))
        stored = {t.id for t in await backend.list_tasks(limit=200)}
        assert stored == {task_id for ids in pushed for task_id in ids}
        assert len(stored) == 100
