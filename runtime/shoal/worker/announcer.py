"""Telling the log and the app's hooks about events, without making the loop wait for hooks.

The loop only queues an event; one task of the announcer's own delivers the queue in order.
A slow hook therefore delays the hooks after it, never a heartbeat: hooks awaited on the
loop once stalled heartbeats until leases were lost.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Iterable

from shoal.app import Event
from shoal.app.hooks import Hooks
from shoal.core.models import Claim
from shoal.worker.events import LEVELS, log_event
from shoal.worker.execution import Outcome

logger = logging.getLogger("shoal.worker")


class Announcer:
    """Events waiting for the hooks of one worker, and the task that delivers them."""

    def __init__(self, hooks: Hooks, worker_id: str) -> None:
        self._hooks = hooks
        self._worker_id = worker_id
        self._queue: collections.deque[Event] = collections.deque()
        self._more = asyncio.Event()
        self._delivering: asyncio.Task[None] | None = None

    def announce(self, event: Event) -> None:
        """Queue ``event`` for its hooks, if any listen; returns at once."""
        if not self._hooks.wants(event.name):
            return
        self._queue.append(event)
        self._more.set()
        if self._delivering is None:
            self._delivering = asyncio.create_task(self._deliver())

    def started(self, claims: Iterable[Claim]) -> None:
        """Log and announce the attempts that start now."""
        logged = logger.isEnabledFor(LEVELS["task_started"])
        announced = self._hooks.wants("task_started")
        if not (logged or announced):
            return  # the common case: decided once per batch, not per task
        for claim in claims:
            if logged:
                log_event("task_started", self._worker_id, claim.task)
            if announced:
                self.announce(Event("task_started", self._worker_id, claim.task))

    def ended(self, outcomes: Iterable[Outcome]) -> None:
        """Log and announce outcomes once recorded (or discarded by the lease fence)."""
        for outcome in outcomes:
            name, task = outcome.event_name, outcome.claim.task
            if logger.isEnabledFor(LEVELS[name]):
                trace = outcome.failure.traceback if outcome.failure else None
                log_event(name, self._worker_id, task, outcome.duration, outcome.error, trace)
            if self._hooks.wants(name):
                self.announce(Event(name, self._worker_id, task, outcome.duration, outcome.error))

    @property
    def backlog(self) -> int:
        """Events queued and not yet delivered."""
        return len(self._queue)

    async def close(self, timeout: float) -> None:
        """Deliver what is queued within ``timeout`` seconds, then stop; what is left is
        logged and dropped (hooks that hang must not keep a worker from exiting)."""
        delivering, self._delivering = self._delivering, None
        if delivering is None:
            return
        self._queue.append(_END)
        self._more.set()
        done, _ = await asyncio.wait({delivering}, timeout=timeout)
        if not done:
            undelivered = sum(1 for event in self._queue if event is not _END)
            delivering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await delivering
            logger.warning(
                "hooks still busy after %.0fs: %d events not delivered", timeout, undelivered
            )
        self._queue.clear()

    async def _deliver(self) -> None:
        while True:
            while not self._queue:
                self._more.clear()
                await self._more.wait()
            event = self._queue.popleft()
            if event is _END:
                return
            await self._hooks.emit(event)


_END = Event("worker_stopped", "")
"""Marks the end of the queue for :meth:`Announcer.close` (compared by identity)."""
