"""How a worker stops: claimed tasks not started are given back at once, running ones get
the shutdown timeout (upkeep goes on meanwhile: heartbeats keep their leases), then those
still running are cancelled, the last outcomes recorded and the worker deregistered, retried
briefly should the backend be away.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import logging
import time

from shoal.app import Event
from shoal.backends import Backend
from shoal.core.backoff import Backoff
from shoal.core.errors import ShoalError
from shoal.core.models import Claim
from shoal.core.settings import WorkerSettings
from shoal.worker.announcer import Announcer
from shoal.worker.execution import Outcome
from shoal.worker.recorder import Recorder
from shoal.worker.slots import Slots

logger = logging.getLogger("shoal.worker")

CANCEL_GRACE = 1.0
"""Seconds that tasks still running at the end of the shutdown timeout get to end once
cancelled; a handler that ignores its cancellation is left running, to its lease."""

_SETTLE_BACKOFF = Backoff(base=0.5, cap=4.0)
_SETTLE_TRIES = 5


class Draining(abc.ABC):
    """Mixed into :class:`~shoal.worker.worker.Worker`: its drain."""

    id: str
    settings: WorkerSettings
    processed: int
    _wakeup: asyncio.Event
    _hurry: bool
    _claimed: collections.deque[Claim]
    _claiming: asyncio.Task[list[Claim]] | None
    _running: dict[str, tuple[Claim, asyncio.Task[Outcome]]]
    _slots: Slots
    _announcer: Announcer
    _recorder: Recorder

    @property
    @abc.abstractmethod
    def backend(self) -> Backend:
        """The app's backend."""

    @abc.abstractmethod
    async def _upkeep(self) -> None:
        """Record outcomes, heartbeat and reap when due."""

    @abc.abstractmethod
    def _wait_timeout(self) -> float:
        """Seconds the loop may wait before a call falls due."""

    @abc.abstractmethod
    def _extra(self) -> dict[str, object]:
        """The fields every log record of this worker carries."""

    async def _drain(self) -> None:
        deadline = time.monotonic() + self.settings.shutdown_timeout
        await self._give_back_claimed()
        if self._running:
            logger.info(
                "waiting up to %.0fs for %d running tasks",
                self.settings.shutdown_timeout,
                len(self._running),
                extra=self._extra(),
            )
        while self._running and not self._hurry and time.monotonic() < deadline:
            self._wakeup.clear()
            await self._upkeep()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wakeup.wait(),
                    max(0.0, min(deadline - time.monotonic(), self._wait_timeout())),
                )
        await self._slots.cancel_unfinished(CANCEL_GRACE, self._extra())
        await self._settle()
        self._slots.shutdown()
        self._announcer.announce(Event("worker_stopped", self.id))
        await self._announcer.close(timeout=CANCEL_GRACE)
        logger.info(
            "worker %s stopped after %d tasks", self.id, self.processed, extra=self._extra()
        )

    async def _give_back_claimed(self) -> None:
        """Release the tasks claimed but not started, so other workers run them while this
        one drains; should the backend be away, :meth:`_settle` tries again."""
        claiming, self._claiming = self._claiming, None
        if claiming is not None:
            with contextlib.suppress(ShoalError):
                self._claimed.extend(await claiming)
        with contextlib.suppress(ShoalError):
            await self._release_claimed()

    async def _release_claimed(self) -> None:
        if self._claimed:
            await self.backend.release([claim.lease for claim in self._claimed])
            self._claimed.clear()

    async def _settle(self) -> None:
        """Last records and deregistration, retried briefly if the backend is away."""
        for attempt in range(1, _SETTLE_TRIES + 1):
            try:
                await self._recorder.settle()
                await self._release_claimed()
                await self.backend.deregister(self.id)
                return
            except ShoalError as error:
                logger.error(
                    "cannot record the last outcomes (%s); try %d of %d",
                    error,
                    attempt,
                    _SETTLE_TRIES,
                    extra=self._extra(),
                )
                if attempt < _SETTLE_TRIES:
                    await asyncio.sleep(_SETTLE_BACKOFF.delay(attempt))
        logger.error(
            "gave up: leases will expire and the tasks will be re-queued", extra=self._extra()
        )
