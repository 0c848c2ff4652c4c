"""Django: its database connection (``django.db.connection``, or ``connections[alias]``),
inside ``transaction.atomic()``.

Django's PostgreSQL backend on psycopg 3 runs the statements through its own
cursor, so they share the atomic block's transaction, and a rollback of the block (an
exception, ``set_rollback(True)``) drops the tasks. Django's connections are per thread and
sync only: push from the thread of the request, with ``push_sync``. Outside ``atomic()``
Django is in autocommit, and the push is refused (see :mod:`.common`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import django.db
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.connection import ConnectionProxy

from shoal.backends.postgres.callers import Adapted
from shoal.backends.postgres.callers.common import CallerSession
from shoal.backends.postgres.paramstyle import translate
from shoal.core.errors import ConfigurationError


class DjangoSession(CallerSession):
    """A Session on a Django connection, driven by ``run_to_end``."""

    driver = "Django"
    opened_by = "inside `with transaction.atomic():`"
    errors = (django.db.Error,)

    def __init__(self, connection: BaseDatabaseWrapper | ConnectionProxy[Any]) -> None:
        self._connection = connection

    async def run(
        self, query: str, args: Sequence[object], *, fetch: bool
    ) -> Sequence[Mapping[str, Any]]:
        text, values = translate(query, args, "format")
        with self._connection.cursor() as cursor:
            cursor.execute(text, values)
            if not fetch:
                return []
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def adapt(connection: object) -> Adapted | None:
    if not isinstance(connection, BaseDatabaseWrapper | ConnectionProxy):
        return None
    vendor = connection.vendor
    if vendor != "postgresql":
        raise ConfigurationError(
            f"this Django connection is to {vendor}: shoal enqueues inside PostgreSQL "
            "transactions only (ENGINE django.db.backends.postgresql)"
        )
    return Adapted(DjangoSession(connection), sync=True, kind="Django connection")
