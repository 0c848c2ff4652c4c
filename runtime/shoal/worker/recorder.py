"""Storing finished attempts: in batches, one batch on its way at a time, in the background.

While the backend stores one batch, the worker claims the next and runs it, so the
database's work and the worker's overlap instead of taking turns (bench/postgres_throughput.py
measures what that gives). An outcome leaves the buffer only once stored; a batch that
failed is raised the next time the worker sends, and is sent again after its back-off.

An outcome the backend refuses (its lease was lost: :class:`~shoal.core.errors.LeaseLost`)
is discarded: counted, logged and announced as ``task_discarded``, never as a success, a
failure or a release, since the task belongs to another worker now.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from shoal.backends import Backend
from shoal.core.errors import LeaseLost, ShoalError
from shoal.core.models import Lease
from shoal.worker import metrics
from shoal.worker.execution import Kind, Outcome
from shoal.worker.pacing import on_demand_pace

Stored = Callable[[list[Outcome]], None]


class Recorder:
    """The outcomes a worker has not stored yet, and the one batch being stored."""

    def __init__(
        self, backend: Callable[[], Backend], *, stored: Stored, wake: Callable[[], None]
    ) -> None:
        self._backend = backend
        self._stored = stored  # told about every batch once it is stored (events, logs)
        self._wake = wake  # the worker's loop: a batch failed, or more is waiting
        self._waiting: list[Outcome] = []
        self._on_its_way: asyncio.Task[None] | None = None
        self.pace = on_demand_pace()  # the back-off after a batch failed

    def add(self, outcome: Outcome) -> None:
        self._waiting.append(outcome)

    def unsent_leases(self) -> list[Lease]:
        """Leases of outcomes not being stored right now: the heartbeat renews them.

        The batch on its way is left out, so the heartbeat and the record never update the
        same rows at once (no lock waits, no deadlock between the two). Should that record
        fail, the next heartbeat renews its leases again.
        """
        return [outcome.lease for outcome in self._waiting]

    @property
    def waiting(self) -> bool:
        return bool(self._waiting)

    def send_in_background(self, now: float) -> None:
        """Start storing what is waiting, unless a batch is on its way already or the
        back-off after a failed batch (:attr:`pace`) has not passed.

        Raises the error that the previous batch met, if any, once: its outcomes are
        waiting again, and a call after the back-off sends them.
        """
        on_its_way = self._on_its_way
        if on_its_way is not None:
            if not on_its_way.done():
                return
            self._on_its_way = None
            error = None if on_its_way.cancelled() else on_its_way.exception()
            if error is not None:
                self.pace.failed(now)
                raise error
        if self._waiting and self.pace.is_due(now):
            self._on_its_way = asyncio.create_task(self._send_then_wake())

    async def settle(self) -> None:
        """Store everything: the batch on its way (its error is suppressed, the batch is sent
        again), then the rest. Raises a backend error; calling again resumes."""
        on_its_way, self._on_its_way = self._on_its_way, None
        if on_its_way is not None:
            with contextlib.suppress(ShoalError):  # its outcomes wait again: sent below
                await on_its_way
        while self._waiting:
            await self._send()

    async def _send_then_wake(self) -> None:
        try:
            await self._send()
        except ShoalError:
            self._wake()  # the loop raises it, and backs off
            raise
        self.pace.succeeded(time.monotonic())
        if self._waiting:
            self._wake()  # more finished meanwhile: the loop sends them now

    async def _send(self) -> None:
        """Store the waiting outcomes with one backend call per kind of outcome."""
        by_kind: dict[Kind, list[Outcome]] = {}
        for outcome in self._waiting:
            by_kind.setdefault(outcome.kind, []).append(outcome)
        self._waiting = []
        unstored = list(by_kind.items())
        try:
            while unstored:
                kind, batch = unstored[0]
                lost = await self._store(kind, batch)
                del unstored[0]
                if lost:
                    batch = [o.as_discarded() if o.claim.task.id in lost else o for o in batch]
                metrics.ended(batch)
                self._stored(batch)
        finally:
            self._waiting[:0] = [outcome for _, batch in unstored for outcome in batch]

    async def _store(self, kind: Kind, batch: list[Outcome]) -> frozenset[str]:
        """Record ``batch``; returns the ids of the tasks whose lease was lost."""
        backend = self._backend()
        try:
            if kind is Kind.ACK:
                kept = [outcome.kept for outcome in batch if outcome.kept is not None]
                await backend.ack([outcome.lease for outcome in batch], kept)
            elif kind is Kind.FAIL:
                await backend.fail([outcome.failure for outcome in batch if outcome.failure])
            elif kind is Kind.CANCEL:
                await backend.cancel_running([outcome.lease for outcome in batch])
            else:
                await backend.release([outcome.lease for outcome in batch])
        except LeaseLost as lost:
            return frozenset(lost.task_ids)
        return frozenset()
