"""psycopg 3: a caller's ``Connection`` (sync) or ``AsyncConnection``, in its transaction.

The transaction is the caller's: inside ``with conn.transaction():``, or, without
autocommit, the one psycopg opens at the first statement and the caller ends with
``conn.commit()`` or ``conn.rollback()``. Placeholders are translated to ``%s``
(:mod:`..paramstyle`); rows come back as dictionaries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from shoal.backends.postgres.callers import Adapted
from shoal.backends.postgres.callers.common import CallerSession
from shoal.backends.postgres.paramstyle import translate


class _Psycopg(CallerSession):
    driver = "psycopg"
    opened_by = "`with conn.transaction():`, or autocommit off until `conn.commit()`"
    errors = (psycopg.Error,)


class PsycopgSession(_Psycopg):
    """A Session on a sync ``psycopg.Connection``, driven by ``run_to_end``."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection

    async def run(
        self, query: str, args: Sequence[object], *, fetch: bool
    ) -> Sequence[Mapping[str, Any]]:
        text, values = translate(query, args, "format")
        with self._connection.cursor(row_factory=dict_row) as cursor:
            cursor.execute(text, values)
            return cursor.fetchall() if fetch else []


class AsyncPsycopgSession(_Psycopg):
    """A Session on a ``psycopg.AsyncConnection``."""

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self._connection = connection

    async def run(
        self, query: str, args: Sequence[object], *, fetch: bool
    ) -> Sequence[Mapping[str, Any]]:
        text, values = translate(query, args, "format")
        async with self._connection.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(text, values)
            return await cursor.fetchall() if fetch else []


def adapt(connection: object) -> Adapted | None:
    if isinstance(connection, psycopg.AsyncConnection):
        return Adapted(AsyncPsycopgSession(connection), sync=False, kind="psycopg AsyncConnection")
    if isinstance(connection, psycopg.Connection):
        return Adapted(PsycopgSession(connection), sync=True, kind="psycopg Connection")
    return None
