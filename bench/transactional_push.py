"""What a push inside the caller's transaction costs, on each kind of connection.

For each kind (``tests/integration/callers.py``: asyncpg, psycopg sync and async, SQLAlchemy
sync and async as Connection and Session, Django), ``--pushes`` times: begin a transaction,
push one task through ``push_in_transaction`` (or ``_sync``), commit, on one connection
per kind, the kinds taking turns; the push alone is timed (for a sync kind, with the hop to
the caller's thread). Every kind runs against one PostgreSQL in the same run, so the ratios
to asyncpg are the figures to compare. Prints one JSON line per kind.

    .venv/bin/python bench/transactional_push.py --pushes 500
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import django
from django.conf import settings

from bench.common import emit
from shoal.backends import open_backend
from shoal.backends.postgres import PostgresBackend
from shoal.core.ids import new_id
from shoal.core.models import NewTask, utcnow
from tests.integration.callers import KINDS, AsyncpgCaller, Caller
from tests.servers.postgres import SUPERUSER, PostgresServer


def one_task() -> NewTask:
    return NewTask(
        id=new_id(),
        queue="default",
        name="bench.noop",
        payload=b"{}",
        run_at=utcnow(),
        max_attempts=1,
    )


async def timed_pushes(
    kinds: Sequence[type[Caller]], url: str, backend: PostgresBackend, n: int
) -> dict[str, list[float]]:
    """Seconds each push took, by kind: one connection per kind, a transaction per push
    (begin and commit untimed), the kinds taking turns so that they share the machine's
    load alike; one push first to warm each connection up (asyncpg prepares statements)."""
    callers = [kind(url) for kind in kinds]
    spent: dict[str, list[float]] = {caller.name: [] for caller in callers}
    for caller in callers:
        await caller.open()
    try:
        for _ in range(n + 1):
            for caller in callers:
                started = time.perf_counter()
                await caller.push(backend, [one_task()])
                spent[caller.name].append(time.perf_counter() - started)
                await caller.end(commit=True)
                await caller.begin()
    finally:
        for caller in callers:
            await caller.close()
    return {name: sorted(times[1:]) for name, times in spent.items()}


async def main(pushes: int) -> None:
    with PostgresServer() as server:
        name = server.create_database()
        url = server.url(name)
        settings.configure(
            DATABASES={
                "default": {
                    "ENGINE": "django.db.backends.postgresql",
                    "NAME": name,
                    "USER": SUPERUSER,
                    "PASSWORD": server.password,
                    "HOST": "127.0.0.1",
                    "PORT": str(server.port),
                }
            },
            USE_TZ=True,
        )
        django.setup()
        backend = open_backend(url)
        assert isinstance(backend, PostgresBackend)
        async with backend:
            await backend.setup()
            spent = await timed_pushes(KINDS, url, backend, pushes)
            floor = statistics.median(spent[AsyncpgCaller.name])
            for kind, times in spent.items():
                p50 = statistics.median(times)
                emit(
                    "transactional_push",
                    kind=kind,
                    pushes=pushes,
                    p50_ms=round(p50 * 1000, 3),
                    p99_ms=round(times[int(len(times) * 0.99) - 1] * 1000, 3),
                    p50_vs_asyncpg=round(p50 / floor, 2),
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=300, help="pushes per kind (300)")
    asyncio.run(main(parser.parse_args().pushes))
