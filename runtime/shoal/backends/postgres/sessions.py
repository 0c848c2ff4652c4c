"""The connections a ``postgresql://`` push runs on: the backend's own, or a caller's.

:func:`~shoal.backends.postgres.enqueue.enqueue` drives a :class:`Session`, a small protocol
over one connection: run a statement, fetch rows, and make a scope atomic (a savepoint of
the caller's open transaction, or nothing on the backend's own connection, where the one
statement is atomic by itself).

Each kind of connection a caller may hold has one adapter that makes a Session of it, and
:func:`caller_session` picks it. asyncpg is the one kind today. Another kind (psycopg's
``AsyncConnection``, SQLAlchemy's ``AsyncConnection``, a Django connection) adds its adapter
here and its type to :data:`CallerConnection`: it passes the statements of ``queries.sql``
in its driver's placeholder style, returns rows as mappings, opens a savepoint for
:meth:`Session.atomic`, and raises :class:`KeyTaken` where its driver reports a unique
violation of ``tasks_idempotency``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shoal.core.errors import ConfigurationError

# A string: asyncpg's classes are generic in its type stubs only.
CallerConnection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
"""The kinds of connection :meth:`PostgresBackend.push_in_transaction` joins."""

_IDEMPOTENCY_INDEX = "tasks_idempotency"


class KeyTaken(Exception):
    """An insert met the unique index of idempotency keys: an unfinished task holds one."""


class Session(Protocol):
    """One connection, as a push drives it."""

    def atomic(self) -> AbstractAsyncContextManager[object]:
        """A scope whose statements apply together or not at all."""
        ...

    async def execute(self, query: str, *args: object) -> None: ...

    async def fetch(self, query: str, *args: object) -> Sequence[Mapping[str, Any]]: ...


class AsyncpgSession:
    """A :class:`Session` on an asyncpg connection."""

    def __init__(self, connection: CallerConnection, *, savepoint: bool) -> None:
        self._connection = connection
        self._savepoint = savepoint

    def atomic(self) -> AbstractAsyncContextManager[object]:
        if self._savepoint:  # inside the caller's transaction, asyncpg makes it a savepoint
            return self._connection.transaction()
        # The backend's own connection runs one statement, atomic by itself: BEGIN and
        # COMMIT would only add two round trips.
        return contextlib.nullcontext()

    async def execute(self, query: str, *args: object) -> None:
        try:
            await self._connection.execute(query, *args)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == _IDEMPOTENCY_INDEX:
                raise KeyTaken from exc
            raise  # a task id already taken: reported as a plain backend error

    async def fetch(self, query: str, *args: object) -> Sequence[Mapping[str, Any]]:
        return await self._connection.fetch(query, *args)


def caller_session(connection: object) -> Session:
    """The session for a caller's ``connection``, which must be in an open transaction."""
    if isinstance(connection, asyncpg.Connection | PoolConnectionProxy):
        if not connection.is_in_transaction():
            raise ConfigurationError(
                "push_in_transaction needs the connection's transaction open "
                "(inside `async with connection.transaction():`); outside one it would "
                "commit the tasks at once"
            )
        return AsyncpgSession(connection, savepoint=True)
    raise ConfigurationError(
        "push_in_transaction takes an asyncpg connection (asyncpg.Connection or one from "
        f"an asyncpg pool), not {type(connection).__module__}.{type(connection).__qualname__}"
    )
