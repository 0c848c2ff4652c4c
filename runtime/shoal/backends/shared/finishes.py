"""Waiting for tasks to finish, written once: who waits for which task, and the wait.

Every backend's ``wait_for_result`` is :meth:`Finishes.wait_for_result`. As with
:mod:`~shoal.backends.shared.wakeups`, a backend supplies its **source of hints** (memory:
its own acks and fails; SQLite: those and other processes' commits; PostgreSQL: NOTIFY on
the results channel; Redis: pub/sub), which reports through :meth:`~Finishes.finished`,
:meth:`~Finishes.hearing` and :meth:`~Finishes.deaf`, and its **look**: a read of the
task's result (:meth:`~shoal.backends.base.Backend.result`).

One source serves every waiter of a backend instance, so a thousand handles waiting cost
one listener, not a thousand; and at most :data:`CONCURRENT_LOOKS` of them look at once, so
a thousand woken together borrow a few of the pool's connections in turn rather than a
thousand (or time out waiting for one). The rules that make a finish impossible to miss:

- **Watch, then look.** A waiter is registered before it looks, so a hint that lands while
  the look is on its way is not slept through: it makes the waiter look again.
- **Trust.** While the source may miss hints (starting, reconnecting, none at all), a
  waiter also looks every ``poll_interval`` seconds; a source that goes deaf or comes back
  makes every waiter look at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

POLL_INTERVAL = 1.0
"""Seconds between looks while the source of hints cannot be trusted (the fallback)."""

CONCURRENT_LOOKS = 4
"""Looks one backend instance makes at once; the rest queue for a turn."""


class _Watch:
    """One waiter: set when a hint may concern its task."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = asyncio.Event()


class Finishes:
    """The waiters for results of one backend instance.

    ``complete`` says the backend's own calls are its only source of hints (memory://): it
    hears everything from the start and never needs to poll.
    """

    def __init__(self, *, complete: bool = False) -> None:
        self._watches: dict[str, set[_Watch]] = {}
        self._trusted = complete
        self._looks = asyncio.Semaphore(CONCURRENT_LOOKS)

    @property
    def waiting(self) -> int:
        """How many waits are on (for tests and health)."""
        return sum(len(watches) for watches in self._watches.values())

    # -- what the backend and its source report ------------------------------------------------

    def finished(self, task_ids: Iterable[str] | None) -> None:
        """Tasks may have finished (``None``: any task may have: look, every waiter)."""
        if task_ids is None:
            self._wake_all()
            return
        for task_id in task_ids:
            for watch in self._watches.get(task_id, ()):
                watch.event.set()

    def hearing(self) -> None:
        """The source hears every finish from now on; what it missed, waiters look for."""
        self._trusted = True
        self._wake_all()

    def deaf(self) -> None:
        """The source may miss finishes from now on: waiters poll."""
        self._trusted = False
        self._wake_all()

    def _wake_all(self) -> None:
        for watches in self._watches.values():
            for watch in watches:
                watch.event.set()

    # -- the wait ------------------------------------------------------------------------------

    async def wait_for_result(
        self,
        task_id: str,
        timeout: float,
        look: Callable[[], Awaitable[T | None]],
        *,
        poll_interval: float | None = None,
    ) -> T | None:
        """Look until ``look`` finds something (returned), or return None after ``timeout``.

        Looks once at once, then again on every hint about ``task_id`` and, while the source
        is not trusted, every ``poll_interval`` seconds (default :data:`POLL_INTERVAL`, read
        at each call).
        """
        interval = POLL_INTERVAL if poll_interval is None else poll_interval
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        watch = _Watch()
        self._watches.setdefault(task_id, set()).add(watch)
        try:
            while True:
                watch.event.clear()  # before the look: a hint during it means look again
                async with self._looks:
                    found = await look()
                if found is not None:
                    return found
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                pause = remaining if self._trusted else min(remaining, interval)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watch.event.wait(), pause)
        finally:
            watches = self._watches[task_id]
            watches.discard(watch)
            if not watches:
                del self._watches[task_id]
