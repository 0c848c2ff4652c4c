"""The caller's connections a push can join, one adapter per driver, picked by type.

A connection's driver is read from the module of its type (``psycopg``, ``sqlalchemy``,
``django``, ``asyncpg``), and only then is that driver's adapter imported: shoal never
imports psycopg, SQLAlchemy or Django unless such a connection is passed to it. Each adapter
says whether its connection is sync or async, and a push of the other kind is refused here,
once, with the call to use instead.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shoal.backends.postgres.sessions import AsyncpgSession, Session
from shoal.core.errors import ConfigurationError

SUPPORTED = (
    "an asyncpg connection (or one from an asyncpg pool), a psycopg 3 Connection or "
    "AsyncConnection, a SQLAlchemy Connection, AsyncConnection, Session or AsyncSession, "
    "or Django's django.db.connection"
)
"""Every kind of connection a push can join, for the error that refuses any other."""

_ADAPTERS = {driver: f"{__name__}.{driver}" for driver in ("psycopg", "sqlalchemy", "django")}


@dataclass(frozen=True, slots=True)
class Adapted:
    """A caller's connection made a :class:`Session`."""

    session: Session
    sync: bool
    """Whether the connection blocks (``push_in_transaction_sync``) or awaits."""
    kind: str
    """What the connection is, as its user knows it: "psycopg Connection"."""


class _Adapter(Protocol):
    def adapt(self, connection: object) -> Adapted | None: ...


def caller_session(connection: object, *, sync: bool) -> Session:
    """The Session for a caller's ``connection``, whose transaction the push joins."""
    adapted = _adapt(connection)
    if adapted is None:
        kind = type(connection)
        raise ConfigurationError(
            f"push_in_transaction takes {SUPPORTED}, not {kind.__module__}.{kind.__qualname__}"
        )
    if adapted.sync and not sync:
        raise ConfigurationError(
            f"a {adapted.kind} is a sync connection: enqueue on it with "
            "task.configure(connection=...).push_sync(...) or push_many_sync(...) "
            "(TransactionalPush.push_in_transaction_sync), not with an awaited push"
        )
    if sync and not adapted.sync:
        raise ConfigurationError(
            f"a {adapted.kind} is an async connection: enqueue on it with "
            "`await task.configure(connection=...).push(...)` (push_in_transaction)"
        )
    return adapted.session


def _adapt(connection: object) -> Adapted | None:
    driver = type(connection).__module__.partition(".")[0]
    if driver == "asyncpg":
        return _asyncpg(connection)
    if driver not in _ADAPTERS:
        return None
    adapter = cast(_Adapter, importlib.import_module(_ADAPTERS[driver]))
    return adapter.adapt(connection)


def _asyncpg(connection: object) -> Adapted | None:
    if not isinstance(connection, asyncpg.Connection | PoolConnectionProxy):
        return None
    if not connection.is_in_transaction():
        raise ConfigurationError(
            "push_in_transaction needs the connection's transaction open "
            "(inside `async with connection.transaction():`); outside one it would "
            "commit the tasks at once"
        )
    return Adapted(
        AsyncpgSession(connection, savepoint=True), sync=False, kind="asyncpg connection"
    )
