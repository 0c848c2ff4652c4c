"""A worker's start-up: wait, for a bounded time, until its backend can serve.

A worker started before its backend (a compose file starting both, a node coming back, a
migration Job still running) would otherwise exit at once and be crash-looped by its
supervisor. It tries again with back-off (:class:`~shoal.core.backoff.Backoff`, one line per
try) while the backend is unreachable or not yet migrated, for ``startup_timeout`` seconds,
then gives up with the last error (the CLI exits 3). A stop (SIGTERM) while it waits ends
the start-up cleanly: nothing has been claimed yet, so there is nothing to drain.

Once the backend answers, its health's warnings are logged (Redis without persistence) and,
with ``require_persistence``, a backend that would lose tasks on a restart is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable

from shoal.backends import Backend
from shoal.core.backoff import Backoff
from shoal.core.errors import BackendError, BackendUnavailable, NotDurable, SchemaMissing
from shoal.core.models import BackendHealth
from shoal.core.settings import WorkerSettings

logger = logging.getLogger("shoal.worker")

STARTUP_BACKOFF = Backoff(base=0.5, cap=5.0)
"""Half a second after the first failure, at most five: a database that comes up is found
within seconds, and a fleet restarted together does not try in lockstep."""

_RETRIED = (BackendUnavailable, SchemaMissing)
"""What time can fix: a server still starting, a migration still running."""


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, so that a stop during start-up exits cleanly.

    The handlers stay until :func:`shoal.worker.run_workers` installs its own, so that no
    signal in between falls to the default action (death by the signal).
    """
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows, not main thread
            loop.add_signal_handler(number, stopping.set)
    return stopping


async def wait_until_ready(
    backend: Backend,
    settings: WorkerSettings,
    stopping: asyncio.Event,
    *,
    backoff: Backoff = STARTUP_BACKOFF,
) -> BackendHealth | None:
    """Open ``backend`` and return its health once it can serve; None if ``stopping`` is set
    first. Raises the last error once ``settings.startup_timeout`` has passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.startup_timeout
    failures = 0
    while True:
        left = max(deadline - loop.time(), 0.0)
        try:
            ready = await _unless_stopped(_ready(backend, max(left, 1.0)), stopping)
        except _RETRIED as error:
            await backend.close()  # start the next try from nothing
            failures += 1
            left = deadline - loop.time()
            if left <= 0:
                raise type(error)(
                    f"not ready within {settings.startup_timeout:g}s of start-up "
                    f"({failures} tries): {error}"
                ) from error
            delay = min(backoff.delay(failures), left)
            logger.warning("backend not ready, try %d; again in %.1fs: %s", failures, delay, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            ready = None
        if stopping.is_set():
            logger.info("stopped during start-up: nothing was claimed")
            return None
        if ready is not None:
            heed_warnings(ready, settings, backend.url)
            return ready


async def _ready(backend: Backend, within: float) -> BackendHealth:
    try:
        async with asyncio.timeout(within):
            await backend.open()
            return await backend.health()
    except TimeoutError:
        raise BackendUnavailable(f"no answer within {within:.0f}s", url=backend.url) from None


async def _unless_stopped(
    work: Awaitable[BackendHealth], stopping: asyncio.Event
) -> BackendHealth | None:
    """``work``'s result, or None as soon as ``stopping`` is set (``work`` is cancelled)."""
    doing = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({doing, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (doing, stop):
            waiter.cancel()
        await asyncio.gather(stop, return_exceptions=True)
    if not doing.done() or doing.cancelled():
        with contextlib.suppress(asyncio.CancelledError, BackendError):
            await doing
        return None
    return doing.result()


def heed_warnings(health: BackendHealth, settings: WorkerSettings, url: str) -> None:
    """Log what the backend warns about; refuse one that is not durable if told to."""
    for warning in health.warnings:
        logger.warning("%s: %s", url, warning)
    if settings.require_persistence and not health.durable:
        reason = "; ".join(health.warnings) or "it keeps tasks in memory"
        raise NotDurable(
            f"refusing to start with require_persistence: a restart of the server loses "
            f"tasks ({reason})",
            url=url,
        )
