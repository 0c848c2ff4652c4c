"""How the ``postgresql://`` backend reaches its server: URL, settings, pool, errors.

``postgresql://app:secret@db:5432/jobs?schema=jobs&listen=false&pool_max_size=20``: the
options named by :class:`PostgresSettings` are taken out of the query; every other query
parameter (``sslmode``, ``application_name``, ...) is left for asyncpg. TLS is libpq's:
``sslmode=require`` encrypts, ``verify-ca`` / ``verify-full`` also check the server's
certificate against ``sslrootcert`` (a CA file; ``verify-full`` the host name too), and
``sslcert`` / ``sslkey`` name a client certificate and its key; a refused certificate is a
:class:`~shoal.core.errors.BackendUnavailable` that says which of them to check.

:class:`Connections` owns the asyncpg pool and opens the listener's own connection; every
driver error passes through :meth:`Connections.translated` and comes out as a
:class:`~shoal.core.errors.ShoalError` naming the URL without its password.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from pydantic import AfterValidator, BeforeValidator, Field

from shoal.backends.shared.tls import POSTGRES, tls_failure
from shoal.core.errors import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    SchemaMissing,
    ShoalError,
)
from shoal.core.settings import Settings
from shoal.core.urls import redact

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _identifier(value: str) -> str:
    if not _SCHEMA_NAME.fullmatch(value):
        raise ValueError("not a plain lower-case PostgreSQL identifier")
    return value


def _none_spelt_out(value: object) -> object:
    return None if isinstance(value, str) and value.lower() in ("none", "forever", "") else value


class PostgresSettings(Settings):
    """How the backend uses its database; every field is also a URL query option."""

    schema_: Annotated[str, AfterValidator(_identifier)] = Field(default="shoal", alias="schema")
    """The PostgreSQL schema holding shoal's tables: keeps them apart from the app's own,
    and lets several shoal deployments share one database."""
    listen: bool = True
    """Wake workers with LISTEN/NOTIFY. ``false`` polls only: needed behind PgBouncer in
    transaction pooling, where a session's LISTEN does not survive the transaction."""
    poll_interval: float = Field(default=1.0, gt=0)
    """Seconds between looks for due work while LISTEN is off or reconnecting: the worst
    wake-up latency in poll-only mode, against one cheap index probe per interval."""
    pool_min_size: int = Field(default=2, ge=0)
    """Connections opened at start and kept open (never more than ``pool_max_size``): a
    busy worker uses two at once, claiming on one while its outcomes are recorded on the
    other (a third now and then for its heartbeat), and opening them at start proves that
    the server is reachable."""
    pool_max_size: int = Field(default=10, ge=1)
    """Connections at most. Calls are batched, so a worker needs few: see the module doc."""
    acquire_timeout: float = Field(default=5.0, gt=0)
    """Seconds a call waits for a pooled connection before failing loudly, never hanging."""
    connect_timeout: float = Field(default=10.0, gt=0)
    """Seconds to establish one connection (TCP, TLS, authentication)."""
    statement_cache_size: int = Field(default=100, ge=0)
    """asyncpg's prepared statements per connection; 0 for PgBouncer transaction pooling
    without prepared-statement support."""
    retention: Annotated[float | None, BeforeValidator(_none_spelt_out)] = Field(
        default=7 * 24 * 3600.0, ge=0
    )
    """Seconds a done or cancelled task is kept for inspection before :meth:`reap` deletes
    it, in queues whose app declares no retention (``App(retention=...)`` and
    ``app.queue_options`` win over it); ``none`` keeps them until purged; ``0`` also deletes
    a success at its ack. A week covers a weekend's investigation without letting the
    table grow forever."""

    @property
    def schema(self) -> str:  # type: ignore[override]  # BaseModel.schema is deprecated
        return self.schema_


_OPTIONS = frozenset(field.alias or name for name, field in PostgresSettings.model_fields.items())


def parse_url(url: str) -> tuple[str, PostgresSettings, str, str | None]:
    """Split ``url`` into the DSN for asyncpg, the settings, the URL safe to show, and the
    password (kept only to scrub it from driver messages).

    Query options other than shoal's go to asyncpg, which takes its connection parameters
    (``sslmode``, ...) and sends the rest to the server as settings (``application_name``,
    ``search_path``, ...): they cannot all be known here, but one a letter or two away from
    a shoal option is a typo, and refused.
    """
    shown = redact(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what validates it
    except ValueError as exc:
        raise ConfigurationError(f"bad PostgreSQL URL {shown}: {exc}") from exc
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(f"not a postgresql:// URL: {shown}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {key: value for key, value in query if key in _OPTIONS}
    passed = [(key, value) for key, value in query if key not in _OPTIONS]
    for key, _ in passed:
        if near := difflib.get_close_matches(key, _OPTIONS, n=1, cutoff=0.8):
            raise ConfigurationError(f"unknown option {key!r} (did you mean {near[0]}?) in {shown}")
    password = parts.password or dict(query).get("password") or None
    try:
        settings = PostgresSettings.model_validate(ours)
    except ConfigurationError as exc:
        raise ConfigurationError(f"bad option: {exc.message} in {shown}") from exc
    dsn = urlunsplit(parts._replace(query=urlencode(passed)))
    return dsn, settings, shown, password


_SCHEMA_ERRORS = (
    asyncpg.UndefinedTableError,
    asyncpg.InvalidSchemaNameError,
    asyncpg.UndefinedFunctionError,
    asyncpg.UndefinedColumnError,
)
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
)
_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


def _connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the server or the connection is gone, rather than the statement
    being wrong: such calls fail with :class:`BackendUnavailable`, and may be retried.

    Besides refused connections and a server shutting down, a restart shows up as asyncpg
    errors about the connection's own state: "connection is closed", or a protocol left out
    of step ("cannot switch to state ...; another operation is in progress").
    """
    if isinstance(exc, _UNAVAILABLE):
        return True
    if isinstance(exc, asyncpg.InternalClientError):
        return not isinstance(exc, asyncpg.exceptions.OutdatedSchemaCacheError)
    return isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc)


async def _keep_session(_connection: Any) -> None:
    """What a pooled connection goes through on its way back to the pool, beyond asyncpg's
    own rollback of a transaction left open: nothing.

    asyncpg's default reset sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` on every release: a second round trip, of four statements, for each call. The
    pool runs shoal's statements only, and none leaves session state behind: the migration
    lock is transaction-scoped, LISTEN has a connection of its own, and nothing is SET.
    """


class Connections:
    """One asyncpg pool for a backend's calls, plus fresh connections for its listener."""

    def __init__(self, url: str, settings: PostgresSettings | None = None) -> None:
        self.dsn, parsed, self.url, self._password = parse_url(url)
        self.settings = settings or parsed
        self._pool: Any = None

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    async def open(self, ping: str) -> None:
        """Create the pool and prove the server answers (``ping`` is a trivial query)."""
        if self._pool is not None:
            return
        s = self.settings
        with self.translated("connecting"):
            pool = await asyncpg.create_pool(
                self.dsn,
                min_size=min(s.pool_min_size, s.pool_max_size),
                max_size=s.pool_max_size,
                timeout=s.connect_timeout,
                statement_cache_size=s.statement_cache_size,
                server_settings=self._server_settings("shoal"),
                reset=_keep_session,
            )
            if s.pool_min_size == 0:  # nothing connected yet
                async with pool.acquire(timeout=s.connect_timeout) as conn:
                    await conn.execute(ping)
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self.settings.acquire_timeout)
            except TimeoutError:
                pool.terminate()  # a caller still holds a connection: cut it

    async def connect(self) -> Any:
        """A new connection outside the pool, for the listener: a busy pool must never delay
        wake-ups, and LISTEN state must not leak into pooled connections."""
        return await asyncpg.connect(
            self.dsn,
            timeout=self.settings.connect_timeout,
            server_settings=self._server_settings("shoal-listener"),
        )

    @contextlib.asynccontextmanager
    async def acquire(self, doing: str) -> AsyncIterator[Any]:
        """A pooled connection for one operation, with driver errors translated."""
        with self.translated(doing):
            if self._pool is None:
                raise BackendError(
                    f"{doing}: the backend is not open; call `await backend.open()` first",
                    url=self.url,
                )
            try:
                conn = await self._pool.acquire(timeout=self.settings.acquire_timeout)
            except TimeoutError as exc:
                raise BackendUnavailable(
                    f"{doing}: no connection from the shoal pool within "
                    f"{self.settings.acquire_timeout:g}s (pool_max_size="
                    f"{self.settings.pool_max_size}): the pool is exhausted or the server "
                    "does not answer",
                    url=self.url,
                ) from exc
            try:
                yield conn
            except Exception as exc:
                # A restart or a cut can leave the protocol out of step without the socket
                # looking closed yet: never hand such a connection out again. (A connection
                # that did close is already detached and back in the pool, which says so
                # with an InterfaceError.)
                with contextlib.suppress(asyncpg.InterfaceError):
                    if _connection_lost(exc) or conn.is_closed():
                        conn.terminate()
                raise
            finally:
                await self._pool.release(conn)

    @contextlib.contextmanager
    def translated(self, doing: str) -> Iterator[None]:
        """Turn driver errors into shoal's, naming the redacted URL and never the password."""
        try:
            yield
        except ShoalError:
            raise
        except _SCHEMA_ERRORS as exc:
            raise SchemaMissing(
                f"{doing}: {self.scrub(str(exc))}: the PostgreSQL schema "
                f"{self.settings.schema!r} is missing or out of date; run `shoal migrate`",
                url=self.url,
            ) from exc
        except asyncpg.ClientConfigurationError as exc:
            raise ConfigurationError(
                f"bad PostgreSQL URL {self.url}: {self.scrub(str(exc))}"
            ) from exc
        except Exception as exc:
            tls = tls_failure(exc, POSTGRES)
            if tls is not None:
                raise BackendUnavailable(
                    f"{doing}: cannot use PostgreSQL: {tls}", url=self.url
                ) from exc
            detail = f"{type(exc).__name__}: {self.scrub(str(exc))}"
            if _connection_lost(exc):
                raise BackendUnavailable(
                    f"{doing}: cannot use PostgreSQL: {detail}", url=self.url
                ) from exc
            if not isinstance(exc, _DRIVER_ERRORS):
                raise
            # Includes codec failures (asyncpg's DataError: a value the column cannot take).
            raise BackendError(f"{doing} failed: {detail}", url=self.url) from exc

    def scrub(self, text: str) -> str:
        """``text`` without the password, should a driver message ever quote it."""
        return text.replace(self._password, "***") if self._password else text

    def _server_settings(self, application_name: str) -> dict[str, str]:
        # Named in pg_stat_activity, so that an operator sees which connections are shoal's.
        return {} if "application_name=" in self.dsn else {"application_name": application_name}
