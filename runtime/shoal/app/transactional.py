"""Enqueue inside a caller's transaction: the backend that can, and the sync path.

``task.configure(connection=conn)`` joins the transaction open on ``conn``. An async
connection goes through the awaited ``push`` (:meth:`App.push_many`); a sync one (psycopg's
``Connection``, SQLAlchemy's ``Connection`` or ``Session``, Django's connection) through
:func:`push_many_sync` here, which runs in the caller's thread on the caller's connection,
with no event loop and no pool of shoal's: the backend need not even be opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shoal.backends import Backend, OnConflict
from shoal.backends.base import TransactionalPush
from shoal.core.errors import ConfigurationError
from shoal.core.models import NewTask

if TYPE_CHECKING:
    from shoal.app.application import App


def transactional(backend: Backend) -> TransactionalPush:
    """``backend``, if it can enqueue inside a caller's transaction, or why not."""
    if not isinstance(backend, TransactionalPush):
        raise ConfigurationError(
            f"{backend.url} cannot enqueue inside a caller's transaction "
            "(connection=...): transactional enqueue needs a postgresql:// backend"
        )
    return backend


def push_many_sync(
    app: App,
    tasks: Sequence[NewTask],
    *,
    connection: object | None,
    on_conflict: OnConflict = OnConflict.RAISE,
) -> list[str]:
    """Enqueue prepared tasks inside the transaction open on the sync ``connection``."""
    if connection is None:
        raise ConfigurationError(
            "push_sync enqueues on a sync connection: give one with "
            "task.configure(connection=conn) (psycopg, SQLAlchemy or Django, in a transaction)"
        )
    backend = transactional(app.backend)
    return backend.push_in_transaction_sync(connection, tasks, on_conflict=on_conflict)
