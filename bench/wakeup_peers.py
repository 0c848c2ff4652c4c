"""The peers bench/wakeup_latency.py measures shoal beside: SAQ, PgQueuer and Procrastinate.

Each peer is what its documentation shows for an asyncio worker with one task whose handler
notes when it started (``bench.noop_app.note_start``), and a producer that enqueues one
task at a time. ``python bench/wakeup_peers.py PEER URL`` runs the peer's worker in this
process until SIGTERM, so that every worker, shoal's included, is a process of its own.
The peers are references, not dependencies of shoal: the ``bench`` extra installs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.noop_app import note_start

CONCURRENCY = 10
Push = Callable[[int], Awaitable[None]]


# -- SAQ (Redis, and PostgreSQL through psycopg) ------------------------------------------------


def _saq_url(url: str) -> str:
    return url.replace("postgresql://", "postgres://", 1)


async def _saq_begin(ctx: Any, *, n: int) -> None:
    note_start(n)


async def saq_worker(url: str) -> None:
    from saq import Queue, Worker

    queue = Queue.from_url(_saq_url(url), name="bench")
    await queue.connect()
    worker = Worker(queue, functions=[("begin", _saq_begin)], concurrency=CONCURRENCY)
    await worker.start()


@contextlib.asynccontextmanager
async def saq_producer(url: str) -> AsyncIterator[Push]:
    from saq import Queue

    queue = Queue.from_url(_saq_url(url), name="bench")
    await queue.connect()

    async def push(n: int) -> None:
        await queue.enqueue("begin", n=n)

    try:
        yield push
    finally:
        await queue.disconnect()


# -- PgQueuer (asyncpg) ---------------------------------------------------------------------


async def pgqueuer_prepare(url: str) -> None:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    connection = await asyncpg.connect(url)
    try:
        await Queries(AsyncpgDriver(connection)).install()
    finally:
        await connection.close()


async def pgqueuer_worker(url: str) -> None:
    import asyncpg
    from pgqueuer import PgQueuer
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.models import Job

    connection = await asyncpg.connect(url)
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("begin")
    async def begin(job: Job) -> None:
        note_start(int(job.payload or b"0"))

    await pgq.run()


@contextlib.asynccontextmanager
async def pgqueuer_producer(url: str) -> AsyncIterator[Push]:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    connection = await asyncpg.connect(url)
    queries = Queries(AsyncpgDriver(connection))

    async def push(n: int) -> None:
        await queries.enqueue("begin", str(n).encode())

    try:
        yield push
    finally:
        await connection.close()


# -- Procrastinate (psycopg) ----------------------------------------------------------------


def _procrastinate_app(url: str) -> Any:
    from procrastinate import App, PsycopgConnector

    app = App(connector=PsycopgConnector(conninfo=url))

    @app.task(name="begin")
    async def begin(n: int) -> None:
        note_start(n)

    return app


async def procrastinate_prepare(url: str) -> None:
    app = _procrastinate_app(url)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


async def procrastinate_worker(url: str) -> None:
    app = _procrastinate_app(url)
    async with app.open_async():
        await app.run_worker_async(concurrency=CONCURRENCY, install_signal_handlers=False)


@contextlib.asynccontextmanager
async def procrastinate_producer(url: str) -> AsyncIterator[Push]:
    app = _procrastinate_app(url)
    async with app.open_async():
        begin = app.tasks["begin"]

        async def push(n: int) -> None:
            await begin.defer_async(n=n)

        yield push


WORKERS: dict[str, Callable[[str], Awaitable[None]]] = {
    "saq": saq_worker,
    "pgqueuer": pgqueuer_worker,
    "procrastinate": procrastinate_worker,
}
PRODUCERS: dict[str, Callable[[str], contextlib.AbstractAsyncContextManager[Push]]] = {
    "saq": saq_producer,
    "pgqueuer": pgqueuer_producer,
    "procrastinate": procrastinate_producer,
}
PREPARE: dict[str, Callable[[str], Awaitable[None]]] = {
    "pgqueuer": pgqueuer_prepare,
    "procrastinate": procrastinate_prepare,
}


async def main(peer: str, url: str) -> None:
    running = asyncio.ensure_future(WORKERS[peer](url))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, running.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await running


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
