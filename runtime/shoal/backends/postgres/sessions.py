"""The connections a ``postgresql://`` push runs on: the backend's own, or a caller's.

:func:`~shoal.backends.postgres.enqueue.enqueue` drives a :class:`Session`, a small protocol
over one connection: run a statement, fetch rows, and make a scope atomic (a savepoint of
the caller's open transaction, or nothing on the backend's own connection, where the one
statement is atomic by itself).

Each kind of connection a caller may hold has one adapter that makes a Session of it: the
asyncpg one is here (the backend's own pool is asyncpg's too), the others are in
:mod:`.callers`, which picks the adapter for a caller's connection.

A Session of a *sync* connection (psycopg's ``Connection``, SQLAlchemy's ``Connection`` or
``Session``, Django's) has the same coroutine methods, which block instead of awaiting:
:func:`run_to_end` runs ``enqueue`` over it in the caller's thread, with no event loop, so
that the enqueue logic is written once for both kinds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

T = TypeVar("T")

# A string: asyncpg's classes are generic in its type stubs only.
AsyncpgConnection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
"""An asyncpg connection: the backend's own, or a caller's."""

IDEMPOTENCY_INDEX = "tasks_idempotency"
"""The unique index of idempotency keys (0001_initial.sql): its violation is :class:`KeyTaken`."""


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

    def __init__(self, connection: AsyncpgConnection, *, savepoint: bool) -> None:
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
            if exc.constraint_name == IDEMPOTENCY_INDEX:
                raise KeyTaken from exc
            raise  # a task id already taken: reported as a plain backend error

    async def fetch(self, query: str, *args: object) -> Sequence[Mapping[str, Any]]:
        return await self._connection.fetch(query, *args)


def run_to_end(step: Coroutine[Any, Any, T]) -> T:
    """Run ``step``, a coroutine over a sync connection's Session, to its end in this thread.

    Such a Session's methods never suspend (they block on the connection), so the coroutine
    finishes at its first step, with no event loop involved.
    """
    try:
        step.send(None)
    except StopIteration as finished:
        result: T = finished.value
        return result
    step.close()
    raise RuntimeError("a sync connection's push suspended: its Session awaited a loop")
