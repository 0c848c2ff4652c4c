"""Retention on PostgreSQL beyond the contract: the URL option as the backends' default, and
deletes that read only the partial indexes of finished work."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from shoal.backends import open_backend
from shoal.backends.postgres import PostgresBackend
from shoal.backends.sqlfiles import queries
from shoal.core.retention import Retention
from tests.integration.test_postgres import with_options


def test_the_url_option_is_the_default_retention_of_done_and_cancelled_tasks() -> None:
    url = "postgresql://u@localhost/db"
    assert PostgresBackend(url).default_retention == Retention()
    hour = PostgresBackend(with_options(url, retention=3600)).default_retention
    assert hour == Retention(done=timedelta(hours=1), dead=timedelta(days=30))
    forever = PostgresBackend(with_options(url, retention="none")).default_retention
    assert forever == Retention(done=None, dead=timedelta(days=30))


async def test_the_prune_statement_reads_only_the_indexes_of_finished_work(
    postgres_url: str,
) -> None:
    async with open_backend(postgres_url) as backend:
        await backend.setup()
    sql = queries("shoal.backends.postgres")["prune_finished"].replace("{schema}", '"shoal"')
    admin = await asyncpg.connect(postgres_url)
    try:
        async with admin.transaction():
            await admin.execute("SET LOCAL enable_seqscan = off")
            rules = (["a", "a", "a"], ["done", "cancelled", "dead"], [1.0, 1.0, 2.0], 1000)
            plan = "\n".join(row[0] for row in await admin.fetch(f"EXPLAIN {sql}", *rules))
    finally:
        await admin.close()
    assert "Seq Scan on tasks" not in plan
    for index in ("tasks_finished", "tasks_dead"):
        assert index in plan
