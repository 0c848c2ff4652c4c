"""SQLAlchemy 2: a caller's ``Connection`` or ``Session`` (sync), ``AsyncConnection`` or
``AsyncSession``, in its transaction.

Statements go to the DB-API driver beneath as they are (``exec_driver_sql``), with the
placeholders of that driver's ``paramstyle`` (:mod:`..paramstyle`): psycopg 3 or asyncpg.
A Session lends the connection of its current transaction (``session.connection()``, which
begins it if need be); the caller commits or rolls back as usual, and a connection on the
``AUTOCOMMIT`` isolation level is refused (see :mod:`.common`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session as OrmSession

from shoal.backends.postgres.callers import Adapted
from shoal.backends.postgres.callers.common import CallerSession
from shoal.backends.postgres.paramstyle import style_of, translate


class _Sqlalchemy(CallerSession):
    driver = "SQLAlchemy"
    opened_by = "`with engine.begin() as conn:` or a Session, not the AUTOCOMMIT isolation level"
    errors = (exc.DBAPIError,)

    def _statement(
        self, dialect: Dialect, query: str, args: Sequence[object]
    ) -> tuple[str, tuple[Any, ...]]:
        style = style_of(dialect.paramstyle, f"SQLAlchemy's {dialect.driver}")
        return translate(query, args, style)


class SqlalchemySession(_Sqlalchemy):
    """A Session on a sync ``Connection`` or ORM ``Session``, driven by ``run_to_end``."""

    def __init__(self, target: Connection | OrmSession) -> None:
        self._target = target

    async def run(
        self, query: str, args: Sequence[object], *, fetch: bool
    ) -> Sequence[Mapping[str, Any]]:
        target = self._target
        connection = target if isinstance(target, Connection) else target.connection()
        result = connection.exec_driver_sql(*self._statement(connection.dialect, query, args))
        return [dict(row) for row in result.mappings()] if fetch else []


class AsyncSqlalchemySession(_Sqlalchemy):
    """A Session on an ``AsyncConnection`` or ``AsyncSession``."""

    def __init__(self, target: AsyncConnection | AsyncSession) -> None:
        self._target = target

    async def run(
        self, query: str, args: Sequence[object], *, fetch: bool
    ) -> Sequence[Mapping[str, Any]]:
        target = self._target
        connection = target if isinstance(target, AsyncConnection) else await target.connection()
        result = await connection.exec_driver_sql(*self._statement(connection.dialect, query, args))
        return [dict(row) for row in result.mappings()] if fetch else []


def adapt(connection: object) -> Adapted | None:
    if isinstance(connection, AsyncConnection | AsyncSession):
        kind = f"SQLAlchemy {type(connection).__name__}"
        return Adapted(AsyncSqlalchemySession(connection), sync=False, kind=kind)
    if isinstance(connection, Connection | OrmSession):
        kind = f"SQLAlchemy {type(connection).__name__}"
        return Adapted(SqlalchemySession(connection), sync=True, kind=kind)
    return None
