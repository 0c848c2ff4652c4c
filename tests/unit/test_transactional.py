"""Transactional enqueue without a server: placeholder translation, the sync driver of a
push, the lazy import of the optional drivers, and the app's refusals.

The pushes themselves, on every kind of connection, are in
``tests/integration/test_transaction_kinds.py``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from shoal import App
from shoal.backends.postgres.paramstyle import style_of, translate
from shoal.backends.postgres.sessions import run_to_end
from shoal.core.errors import ConfigurationError


def test_dollar_placeholders_pass_through_for_asyncpg_style_drivers() -> None:
    query = "SELECT $1::text[], $2::int WHERE x LIKE '5%'"
    assert translate(query, (["a"], 2), "numeric_dollar") == (query, (["a"], 2))


def test_format_placeholders_follow_the_dollar_numbers_and_double_percent_signs() -> None:
    query = "SELECT $2::int, $1::text, $2::int WHERE x LIKE '5%'"
    text, args = translate(query, ("one", 2), "format")
    assert text == "SELECT %s::int, %s::text, %s::int WHERE x LIKE '5%%'"
    assert args == (2, "one", 2)


@pytest.mark.parametrize(("paramstyle", "style"), [("pyformat", "format"), ("format", "format")])
def test_driver_paramstyles_map_to_the_two_styles(paramstyle: str, style: str) -> None:
    assert style_of(paramstyle, "psycopg") == style


def test_a_driver_of_another_paramstyle_is_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match="SQLAlchemy's pg8000 takes 'qmark'"):
        style_of("qmark", "SQLAlchemy's pg8000")


def test_a_session_that_never_suspends_runs_to_its_end_without_a_loop() -> None:
    async def push() -> list[str]:
        return ["id-1"]

    assert run_to_end(push()) == ["id-1"]


def test_a_session_that_suspends_is_a_programming_error_not_a_hang() -> None:
    async def push() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="suspended"):
        run_to_end(push())


def test_no_optional_driver_is_imported_unless_its_connection_is_passed() -> None:
    program = textwrap.dedent(
        """
        import asyncio, sys
        import asyncpg
        from shoal.backends.postgres.callers import caller_session
        from shoal.core.errors import ConfigurationError
        for connection in (object(), asyncpg.Record):
            try:
                caller_session(connection, sync=False)
            except ConfigurationError:
                pass
        loaded = [name for name in ("psycopg", "sqlalchemy", "django") if name in sys.modules]
        assert not loaded, loaded
        """
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)


def test_push_sync_on_a_connection_needs_a_backend_that_joins_transactions() -> None:
    app = App("memory://")

    @app.task
    def send(to: str) -> None: ...

    with pytest.raises(ConfigurationError, match="needs a postgresql:// backend"):
        send.configure(connection=object()).push_many_sync([{"to": "a@example.com"}])
