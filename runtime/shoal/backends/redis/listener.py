"""Wake-ups for the Redis backend: ``PUBLISH`` on a connection of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

import redis.asyncio as aioredis
from redis import exceptions as rex
from redis.asyncio.connection import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from shoal.backends.redis.codec import text


class Listener:
    """Wakes local waiters when a queue's name is published on ``channel``.

    It runs on a pool of its own so that it never holds one of the main pool's
    connections. Messages published while it is disconnected are lost, so it wakes every
    waiter when the connection breaks; their timeouts are the polling fallback.
    """

    def __init__(self, client: aioredis.Redis, channel: str) -> None:
        pool = client.connection_pool
        kwargs = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
        self._pool = ConnectionPool(connection_class=pool.connection_class, **kwargs)
        self._channel = channel
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    async def wait(self, queues: Sequence[str], timeout: float) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name=f"shoal {self._channel}")
        event = asyncio.Event()
        for queue in queues:
            self._waiters.setdefault(queue, set()).add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            for queue in queues:
                self._waiters[queue].discard(event)

    def wake(self, queues: Iterable[str]) -> None:
        for queue in queues:
            for event in self._waiters.get(queue, ()):
                event.set()

    async def close(self) -> None:
        task, self._task = self._task, None
        # Cancel until the task ends: Python 3.11's asyncio.wait_for, which redis-py uses to
        # connect and to send, swallows a cancellation that lands as its inner call finishes,
        # and the listener would then go on listening (and close() wait for it) for ever.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: the loop ended with it, nothing else to do
        await self._pool.disconnect()

    async def _listen(self) -> None:
        client = aioredis.Redis(connection_pool=self._pool)
        delay, deaf = 0.05, False
        while True:  # until close() cancels the task; every pass blocks or sleeps
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                if deaf:  # what was published meanwhile is lost: let everyone look
                    self.wake(list(self._waiters))
                delay, deaf = 0.05, False
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self.wake([text(message["data"])])
            except (rex.ConnectionError, rex.TimeoutError, OSError):
                self.wake(list(self._waiters))  # so that nobody sleeps through an outage
                deaf = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
