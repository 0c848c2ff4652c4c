"""A push inside a caller's transaction is PostgreSQL's alone; elsewhere the app says so.

Matrix: memory, SQLite and Redis, each with a fresh store. PostgreSQL's side (commit
enqueues, rollback enqueues nothing, through the app and through
``PostgresBackend.push_in_transaction``) is in ``test_postgres.py`` for asyncpg and in
``test_transaction_kinds.py`` for every kind of connection.
"""

from __future__ import annotations

import pytest

from shoal import App
from shoal.backends.base import TransactionalPush
from shoal.core.errors import ConfigurationError


@pytest.fixture(params=["memory_url", "sqlite_url", "redis_url"])
def url(request: pytest.FixtureRequest) -> str:
    value: str = request.getfixturevalue(request.param)
    return value


async def test_a_connection_is_refused_where_no_transaction_can_be_joined(url: str) -> None:
    app = App(url)

    @app.task
    async def send(to: str) -> None: ...

    async with app:
        await app.backend.setup()
        assert not isinstance(app.backend, TransactionalPush)
        with pytest.raises(ConfigurationError, match="needs a postgresql:// backend"):
            await send.configure(connection=object()).push(to="a@example.com")
        with pytest.raises(ConfigurationError, match="inside a caller's transaction"):
            await send.configure(connection=object()).push_many([])
        assert await app.backend.queues() == []


def test_a_sync_connection_is_refused_where_no_sync_transaction_can_be_joined(
    url: str,
) -> None:
    app = App(url)

    @app.task
    async def send(to: str) -> None: ...

    connection = object()  # what a psycopg or Django connection would be
    with pytest.raises(ConfigurationError, match="inside a caller's transaction"):
        send.configure(connection=connection).push_sync(to="a@example.com")
    with pytest.raises(ConfigurationError, match="needs a postgresql:// backend"):
        send.configure(connection=connection).push_many_sync([{"to": "b@example.com"}])
    with pytest.raises(ConfigurationError, match="inside a caller's transaction"):
        app.push_by_name_sync(send.name, {"to": "c@example.com"}, connection=connection)
