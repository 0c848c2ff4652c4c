"""Enqueue inside a caller's transaction: the backend that can, or why not.

``task.configure(connection=conn)`` joins the transaction open on ``conn``. An async
connection goes through the awaited ``push`` (:meth:`App.push_many`); a sync one (psycopg's
``Connection``, SQLAlchemy's ``Connection`` or ``Session``, Django's connection) through
``push_sync`` (:meth:`App.push_many_sync`), which runs in the caller's thread on the caller's
connection, with no event loop and no pool of shoal's: the backend need not even be opened.
"""

from __future__ import annotations

from shoal.backends import Backend
from shoal.backends.base import TransactionalPush
from shoal.core.errors import ConfigurationError


def transactional(backend: Backend) -> TransactionalPush:
    """``backend``, if it can enqueue inside a caller's transaction, or why not."""
    if not isinstance(backend, TransactionalPush):
        raise ConfigurationError(
            f"{backend.url} cannot enqueue inside a caller's transaction "
            "(connection=...): transactional enqueue needs a postgresql:// backend"
        )
    return backend
