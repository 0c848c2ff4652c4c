"""The Redis backend's source of wake-ups: ``SUBSCRIBE`` on a connection of its own.

Scripts that make work ready ``PUBLISH`` the queue's name on the backend's channel; the
:class:`Listener` turns each message into a hint for the backend's
:class:`~shoal.backends.shared.wakeups.Wakeups`, which keeps the waiters and the wait.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis import exceptions as rex
from redis.asyncio.connection import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from shoal.backends.redis.codec import text
from shoal.backends.shared.finishes import Finishes
from shoal.backends.shared.wakeups import Wakeups
from shoal.core.backoff import Backoff

logger = logging.getLogger("shoal.backends.redis")

_RESUBSCRIBE = Backoff(base=0.05, cap=2.0)
"""Between attempts to subscribe again: Redis restarts in about a second."""


class Listener:
    """Hints for ``wakeups`` from what is published on ``channel``.

    It runs on a pool of its own so that it never holds one of the main pool's
    connections. Messages published while it is disconnected are lost, so it tells the
    wake-ups it is deaf when the connection breaks and hearing again once it has
    subscribed; both make every waiter look for itself.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        channel: str,
        wakeups: Wakeups,
        *,
        results: tuple[str, Finishes],
    ) -> None:
        pool = client.connection_pool
        kwargs = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
        self._pool = ConnectionPool(connection_class=pool.connection_class, **kwargs)
        self._channel = channel
        self._wakeups = wakeups
        # Finished tasks' ids, newline-separated, on a second channel of the same connection.
        self._results_channel, self._finishes = results
        self._results_wanted = False  # subscribed once this process waits for a result
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Listen in the background (again, should the last listening have ended)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name=f"shoal {self._channel}")

    async def want_results(self) -> None:
        """Subscribe to the results channel too, from now on (only then: a worker that waits
        for no result is not sent every other worker's acks); a listener already running
        subscribes again, and its waiters look meanwhile."""
        if self._results_wanted:
            return
        self._results_wanted = True
        if self._task is not None and not self._task.done():
            await self._end()
            self.start()

    async def close(self) -> None:
        await self._end()
        await self._pool.disconnect()

    async def _end(self) -> None:
        task, self._task = self._task, None
        # Cancel until the task ends: Python 3.11's asyncio.wait_for, which redis-py uses to
        # connect and to send, swallows a cancellation that lands as its inner call finishes,
        # and the listener would then go on listening (and close() wait for it) for ever.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        if task is not None:
            self._deaf()
            if not task.cancelled():
                task.exception()  # retrieved: the loop ended with it, nothing else to do

    async def _listen(self) -> None:
        client = aioredis.Redis(connection_pool=self._pool)
        failures = 0
        while True:  # until close() cancels the task; every pass blocks or sleeps
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                results = self._results_wanted  # as it was when subscribing
                channels = [self._channel, *([self._results_channel] if results else [])]
                await pubsub.subscribe(*channels)
                self._wakeups.hearing()
                if results:
                    self._finishes.hearing()
                failures = 0
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self._hint(text(message["channel"]), text(message["data"]))
            except (rex.ConnectionError, rex.TimeoutError, OSError) as exc:
                self._deaf()  # so that nobody sleeps through an outage
                failures += 1
                delay = _RESUBSCRIBE.delay(failures)
                logger.debug("wake-up subscription lost (%s); again in %.2fs", exc, delay)
                await asyncio.sleep(delay)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py

    def _hint(self, channel: str, data: str) -> None:
        if channel == self._results_channel:
            self._finishes.finished(data.split("\n"))
        else:
            self._wakeups.work([data])

    def _deaf(self) -> None:
        self._wakeups.deaf()
        self._finishes.deaf()
