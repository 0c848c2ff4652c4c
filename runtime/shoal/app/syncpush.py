"""The seam for a sync push inside a caller's *sync* database transaction.

A sync connection (psycopg 3, SQLAlchemy, Django) belongs to the caller's thread and its
open transaction, so that push runs right there, never on the portal's loop. A backend that
can do it has ``push_in_transaction_sync``; any other refuses with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from shoal.backends import Backend, OnConflict
from shoal.core.errors import ConfigurationError
from shoal.core.models import NewTask


@runtime_checkable
class SyncTransactionalPush(Protocol):
    """A backend that enqueues inside a caller's open transaction on a sync connection:
    commit enqueues, rollback enqueues nothing and wakes nobody."""

    def push_in_transaction_sync(
        self,
        connection: object,
        tasks: Sequence[NewTask],
        *,
        on_conflict: OnConflict = OnConflict.RAISE,
    ) -> list[str]: ...


def push_in_transaction_sync(
    backend: Backend, connection: object, tasks: Sequence[NewTask], on_conflict: OnConflict
) -> list[str]:
    if not isinstance(backend, SyncTransactionalPush):
        raise ConfigurationError(
            f"{backend.url} cannot enqueue inside a caller's sync transaction "
            f"(connection={type(connection).__name__}): push_sync(connection=...) needs a "
            "backend with sync transactional enqueue; without connection=, push_sync "
            "enqueues on its own"
        )
    return backend.push_in_transaction_sync(connection, tasks, on_conflict=on_conflict)
