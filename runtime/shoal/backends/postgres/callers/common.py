"""What the sessions on psycopg, SQLAlchemy and Django connections do alike.

Atomic scopes are savepoints named in SQL (``SAVEPOINT shoal_push``), the same on every
driver. They are also the guard against a connection outside any transaction: every write a
push makes runs inside one, and PostgreSQL refuses a savepoint outside a transaction block
(SQLSTATE 25P01), which is reported as a :class:`ConfigurationError` before anything is
stored. A driver that opens transactions by itself (psycopg without autocommit, SQLAlchemy's
autobegin, Django inside ``atomic()``) opens the caller's transaction there, which the caller
then commits or rolls back.

Driver errors come out as shoal's: a violation of the idempotency index as :class:`KeyTaken`
(for :mod:`..enqueue`), a missing schema as :class:`SchemaMissing`, anything else as
:class:`BackendError` with the server's first line. The diagnosis is read through the
wrappers SQLAlchemy and Django put around the driver's own error.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from shoal.backends.postgres.sessions import IDEMPOTENCY_INDEX, KeyTaken
from shoal.core.errors import BackendError, ConfigurationError, SchemaMissing

_SAVEPOINT = "shoal_push"
_UNIQUE_VIOLATION = "23505"
_NO_TRANSACTION = "25P01"
_MISSING = frozenset({"3F000", "42P01", "42883"})  # no such schema, table, function


class CallerSession(abc.ABC):
    """A Session on a caller's connection; subclasses run one statement on their driver."""

    driver: str
    """The driver as its users name it, in errors: "psycopg"."""
    opened_by: str
    """How a transaction is opened on this driver, for the error outside one."""
    errors: tuple[type[Exception], ...]
    """The driver's exceptions, translated to shoal's."""

    @contextlib.asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        await self.execute(f"SAVEPOINT {_SAVEPOINT}")
        try:
            yield
        except BaseException:
            await self.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            await self.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            raise
        await self.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")

    async def execute(self, query: str, *args: object) -> None:
        with self._translated():
            await self.run(query, args, fetch=False)

    async def fetch(self, query: str, *args: object) -> Sequence[Mapping[str, Any]]:
        with self._translated():
            return await self.run(query, args, fetch=True)

    @abc.abstractmethod
    async def run(
        self, query: str, args: Sequence[object], *, fetch: bool
    ) -> Sequence[Mapping[str, Any]]:
        """Run ``query`` (written with ``$n`` placeholders) and return its rows if
        ``fetch``; translate it with :func:`..paramstyle.translate` for the driver."""

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except self.errors as exc:
            raise self._shoal_error(exc) from exc

    def _shoal_error(self, exc: Exception) -> Exception:
        sqlstate, constraint, source = diagnose(exc)
        detail = f"{type(source).__name__}: {(str(source).splitlines() or [''])[0]}"
        if sqlstate == _UNIQUE_VIOLATION and constraint == IDEMPOTENCY_INDEX:
            return KeyTaken()
        if sqlstate == _NO_TRANSACTION:
            return ConfigurationError(
                f"push_in_transaction needs the {self.driver} connection's transaction open "
                f"({self.opened_by}); outside one it would commit the tasks at once"
            )
        if sqlstate in _MISSING:
            return SchemaMissing(
                f"push on the caller's {self.driver} connection: {detail}: is it connected to "
                "the backend's database, and has `shoal migrate` run there?"
            )
        return BackendError(f"push on the caller's {self.driver} connection failed: {detail}")


def diagnose(exc: BaseException) -> tuple[str | None, str | None, BaseException]:
    """The SQLSTATE, the constraint violated, and the error that reports them: the driver's
    own, found behind SQLAlchemy's ``orig`` and Django's ``__cause__``."""
    sqlstate: str | None = None
    constraint: str | None = None
    source = exc
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop(0)
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        state = getattr(error, "sqlstate", None)  # psycopg's and asyncpg's errors have it
        if sqlstate is None and isinstance(state, str):
            sqlstate, source = state, error
        diag = getattr(error, "diag", None)  # psycopg
        named = getattr(diag, "constraint_name", None) or getattr(error, "constraint_name", None)
        if constraint is None and isinstance(named, str):
            constraint = named
        pending += [getattr(error, "orig", None), error.__cause__]
    return sqlstate, constraint, source
