"""Helpers for the tests of code that uses shoal.

Point the app at ``memory://`` in tests, push as the code under test does, then::

    done = await shoal.testing.drain(app)

runs a real worker until no due work is left, so handlers run exactly as in production.

:mod:`shoal.testing.contract` is the backend contract suite, for the authors of backends.
"""

from __future__ import annotations

import asyncio
import sys

from shoal.app import App
from shoal.core.settings import WorkerSettings
from shoal.worker import Worker

CASE_MODULES: tuple[str, ...] = (
    "shoal.testing.contract",
    "shoal.testing.contract_push",
    "shoal.testing.contract_admin",
    "shoal.testing.contract_bulk",
    "shoal.testing.contract_lifecycle",
    "shoal.testing.contract_retention",
    "shoal.testing.contract_abort",
    "shoal.testing.contract_limits",
    "shoal.testing.contract_schedules",
    "shoal.testing.contract_results",
    "shoal.testing.contract_throughput",
)
"""The modules whose ``test_*`` functions make up the contract, core primitives first; named
here, where importing them (and pytest) is not needed, and used by :mod:`shoal.testing.contract`."""

if (_pytest_module := sys.modules.get("pytest")) is not None:
    # A failed assert shows its values only in modules pytest rewrote as it imported them;
    # it rewrites test files on its own, and the contract's cases live here, in a package.
    _pytest_module.register_assert_rewrite(*CASE_MODULES)


async def drain(
    app: App, *, queues: tuple[str, ...] = (), concurrency: int = 10, timeout: float = 30.0
) -> int:
    """Run a worker until the queues hold nothing due or running; return tasks processed.

    Tasks scheduled for later (delays, retries with backoff) are left alone. Raises
    ``TimeoutError`` if work is still due after ``timeout`` seconds.
    """
    settings = WorkerSettings(queues=queues, concurrency=concurrency, poll_interval=0.05)
    await app.open()  # here, before stats are read: the app may be open on another loop
    worker = Worker(app, settings)
    run = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(timeout):
            while not run.done():
                stats = await app.backend.stats(worker.queues)
                idle = all(s.ready == 0 and s.running == 0 for s in stats.values())
                if idle and worker.in_flight == 0:
                    break
                await asyncio.sleep(0.02)
    finally:
        worker.stop("drained")
        await run
    return worker.processed
