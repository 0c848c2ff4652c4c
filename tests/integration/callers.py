"""The caller's side of a transactional push: one transaction kind per driver, as a user has it.

Each :class:`Caller` opens its own connection to the test database, begins a transaction as
its library's users do, runs the caller's own statements in it, pushes, and commits or rolls
back. The tests drive all of them the same way from asyncio; a sync caller runs every call
in one thread of its own (Django's connections are per thread), where no event loop runs,
so a sync push there proves it needs none.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

import asyncpg
import psycopg
from django.db import connection as django_connection
from django.db import transaction as django_transaction
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from shoal.app.tasks import ConfiguredTask
from shoal.backends import OnConflict
from shoal.backends.postgres import PostgresBackend
from shoal.core.models import NewTask

T = TypeVar("T")


class Caller(abc.ABC):
    """A connection of one driver, in a transaction of the caller's (or, with
    ``transaction=False``, in autocommit: the push must refuse it)."""

    name: ClassVar[str]
    sync: ClassVar[bool]

    def __init__(self, url: str, *, transaction: bool = True) -> None:
        self.url = url
        self.transaction = transaction

    @property
    @abc.abstractmethod
    def connection(self) -> object:
        """What the user passes as ``connection=``."""

    async def open(self) -> None:
        """Connect and, with ``transaction``, begin."""
        await self.connect()
        if self.transaction:
            await self.begin()

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def begin(self) -> None:
        """Begin a transaction (again, after :meth:`end`) as the library's users do."""

    @abc.abstractmethod
    async def sql(self, statement: str) -> None:
        """The caller's own statement, in its transaction."""

    @abc.abstractmethod
    async def end(self, *, commit: bool) -> None:
        """Commit, or roll back, the caller's transaction."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def push(
        self,
        backend: PostgresBackend,
        tasks: Sequence[NewTask],
        on_conflict: OnConflict = OnConflict.RAISE,
    ) -> list[str]:
        """``backend.push_in_transaction`` (or ``_sync``) on this connection."""
        return await backend.push_in_transaction(self.connection, tasks, on_conflict=on_conflict)

    async def push_app(
        self, task: ConfiguredTask[Any, Any], calls: list[Mapping[str, Any]]
    ) -> list[str]:
        """The app's way: one ``push`` and a ``push_many`` of the rest."""
        first, *rest = calls
        handles = [await task.push(**first), *await task.push_many(rest)]
        return [handle.id for handle in handles]


class SyncCaller(Caller):
    """A sync driver's caller: every call runs in the caller's own thread."""

    sync = True

    def __init__(self, url: str, *, transaction: bool = True) -> None:
        super().__init__(url, transaction=transaction)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)

    async def _in_thread(self, call: Callable[[], T]) -> T:
        def no_loop() -> T:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return call()
            raise AssertionError("a sync caller's thread must have no event loop")

        return await asyncio.get_running_loop().run_in_executor(self._thread, no_loop)

    async def push(
        self,
        backend: PostgresBackend,
        tasks: Sequence[NewTask],
        on_conflict: OnConflict = OnConflict.RAISE,
    ) -> list[str]:
        return await self._in_thread(
            lambda: backend.push_in_transaction_sync(
                self.connection, tasks, on_conflict=on_conflict
            )
        )

    async def push_app(
        self, task: ConfiguredTask[Any, Any], calls: list[Mapping[str, Any]]
    ) -> list[str]:
        first, *rest = calls
        handles = await self._in_thread(
            lambda: [task.push_sync(**first), *task.push_many_sync(rest)]
        )
        return [handle.id for handle in handles]

    async def close(self) -> None:
        try:
            await self._in_thread(self._close)
        finally:
            self._thread.shutdown()

    @abc.abstractmethod
    def _close(self) -> None: ...


class AsyncpgCaller(Caller):
    name = "asyncpg"
    sync = False

    async def connect(self) -> None:
        self._conn = await asyncpg.connect(self.url)

    async def begin(self) -> None:
        self._tx = self._conn.transaction()
        await self._tx.start()

    @property
    def connection(self) -> object:
        return self._conn

    async def sql(self, statement: str) -> None:
        await self._conn.execute(statement)

    async def end(self, *, commit: bool) -> None:
        await (self._tx.commit() if commit else self._tx.rollback())

    async def close(self) -> None:
        await self._conn.close()


class PsycopgAsyncCaller(Caller):
    """Autocommit on, and a ``conn.transaction()`` block: psycopg's explicit way."""

    name = "psycopg-async"
    sync = False

    async def connect(self) -> None:
        self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)

    async def begin(self) -> None:
        self._tx = self._conn.transaction()
        await self._tx.__aenter__()

    @property
    def connection(self) -> object:
        return self._conn

    async def sql(self, statement: str) -> None:
        await self._conn.execute(statement.encode())

    async def end(self, *, commit: bool) -> None:
        if commit:
            await self._tx.__aexit__(None, None, None)
        else:
            await self._tx.__aexit__(psycopg.Rollback, psycopg.Rollback(), None)

    async def close(self) -> None:
        await self._conn.close()


class PsycopgCaller(SyncCaller):
    """Autocommit off: the transaction psycopg opens itself, ended by commit() or rollback()."""

    name = "psycopg"

    async def connect(self) -> None:
        self._conn = await self._in_thread(
            lambda: psycopg.connect(self.url, autocommit=not self.transaction)
        )

    async def begin(self) -> None:
        """Nothing to do: psycopg begins at the push's first statement."""

    @property
    def connection(self) -> object:
        return self._conn

    async def sql(self, statement: str) -> None:
        await self._in_thread(lambda: self._conn.execute(statement.encode()))

    async def end(self, *, commit: bool) -> None:
        await self._in_thread(self._conn.commit if commit else self._conn.rollback)

    def _close(self) -> None:
        self._conn.close()


def sqlalchemy_url(url: str, driver: str) -> str:
    return url.replace("postgresql://", f"postgresql+{driver}://", 1)


def autocommit(transaction: bool) -> dict[str, Any]:
    return {} if transaction else {"isolation_level": "AUTOCOMMIT"}


class SqlalchemyCaller(SyncCaller):
    """A sync ``Connection`` (``engine.connect()``, ``conn.begin()``) or ORM ``Session``
    (``session.begin()``), on psycopg 3."""

    orm: ClassVar[bool]

    async def connect(self) -> None:
        self._engine: Engine = create_engine(
            sqlalchemy_url(self.url, "psycopg"), **autocommit(self.transaction)
        )
        self._target: Connection | Session = (
            Session(self._engine) if self.orm else await self._in_thread(self._engine.connect)
        )

    async def begin(self) -> None:
        await self._in_thread(self._target.begin)

    @property
    def connection(self) -> object:
        return self._target

    async def sql(self, statement: str) -> None:
        await self._in_thread(lambda: self._target.execute(text(statement)))

    async def end(self, *, commit: bool) -> None:
        await self._in_thread(self._target.commit if commit else self._target.rollback)

    def _close(self) -> None:
        self._target.close()
        self._engine.dispose()


class SqlalchemyConnectionCaller(SqlalchemyCaller):
    name = "sqlalchemy-connection"
    orm = False


class SqlalchemySessionCaller(SqlalchemyCaller):
    name = "sqlalchemy-session"
    orm = True


class SqlalchemyAsyncCaller(Caller):
    """An ``AsyncConnection`` or ``AsyncSession`` and its ``begin()``, on ``driver``."""

    sync = False
    orm: ClassVar[bool]
    driver: ClassVar[str]

    async def connect(self) -> None:
        self._engine: AsyncEngine = create_async_engine(
            sqlalchemy_url(self.url, self.driver),
            **autocommit(self.transaction),
        )
        self._target: AsyncConnection | AsyncSession = (
            AsyncSession(self._engine) if self.orm else await self._engine.connect()
        )

    async def begin(self) -> None:
        await self._target.begin()

    @property
    def connection(self) -> object:
        return self._target

    async def sql(self, statement: str) -> None:
        await self._target.execute(text(statement))

    async def end(self, *, commit: bool) -> None:
        await (self._target.commit() if commit else self._target.rollback())

    async def close(self) -> None:
        await self._target.close()
        await self._engine.dispose()


class SqlalchemyAsyncConnectionCaller(SqlalchemyAsyncCaller):
    """On asyncpg: the ``$n`` placeholders, passed as written."""

    name = "sqlalchemy-async-connection"
    orm = False
    driver = "asyncpg"


class SqlalchemyAsyncSessionCaller(SqlalchemyAsyncCaller):
    """On psycopg 3's ``AsyncConnection``."""

    name = "sqlalchemy-async-session"
    orm = True
    driver = "psycopg"


class DjangoCaller(SyncCaller):
    """``django.db.connection`` inside ``transaction.atomic()``; a rollback is an exception
    leaving the block. The database is the one Django's settings name (see the test module):
    ``url`` is unused."""

    name = "django"

    async def connect(self) -> None:
        """Nothing to do: Django connects at the first statement."""

    async def begin(self) -> None:
        self._atomic = django_transaction.atomic()
        await self._in_thread(self._atomic.__enter__)

    @property
    def connection(self) -> object:
        return django_connection

    async def sql(self, statement: str) -> None:
        def run() -> None:
            with django_connection.cursor() as cursor:
                cursor.execute(statement)

        await self._in_thread(run)

    async def end(self, *, commit: bool) -> None:
        if commit:
            await self._in_thread(lambda: self._atomic.__exit__(None, None, None))
        else:
            failure = RuntimeError("the view failed")
            await self._in_thread(lambda: self._atomic.__exit__(RuntimeError, failure, None))

    def _close(self) -> None:
        django_connection.close()


KINDS: tuple[type[Caller], ...] = (
    AsyncpgCaller,
    PsycopgAsyncCaller,
    PsycopgCaller,
    SqlalchemyConnectionCaller,
    SqlalchemySessionCaller,
    SqlalchemyAsyncConnectionCaller,
    SqlalchemyAsyncSessionCaller,
    DjangoCaller,
)
