"""Cancel requests for the tasks a worker holds, as its heartbeats bring them.

A running attempt gets a :class:`~shoal.core.context.Cancellation` when it starts; a request
sets it (what ``Context.cancel_requested`` reads) and cancels an ``async def`` handler
outright. A plain function runs in a thread, which cannot be interrupted: it sees the flag
and stops itself (``Context.raise_if_cancelled``). A task claimed ahead and not started yet
is marked, so that it ends cancelled without running when its turn comes.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import Callable, Mapping

from shoal.core.context import Cancellation
from shoal.core.models import Claim
from shoal.worker.execution import Outcome

logger = logging.getLogger("shoal.worker")


class Cancels:
    """The cancellation of each attempt a worker runs."""

    def __init__(self, is_async: Callable[[str], bool]) -> None:
        self._is_async = is_async  # by task name: whether its handler is an async def
        self._flags: dict[str, Cancellation] = {}

    def started(self, task_id: str) -> Cancellation:
        flag = self._flags[task_id] = Cancellation()
        return flag

    def ended(self, task_id: str) -> None:
        self._flags.pop(task_id, None)

    def deliver(
        self,
        cancelling: Mapping[str, str],
        running: Mapping[str, tuple[Claim, asyncio.Task[Outcome]]],
        claimed: collections.deque[Claim],
    ) -> collections.deque[Claim]:
        """Pass on the requests of a heartbeat's reply (task id -> who asked); returns the
        tasks claimed ahead, those asked for marked."""
        for task_id, by in cancelling.items():
            flag = self._flags.get(task_id)
            if flag is None or flag.requested or task_id not in running:
                continue
            claim, attempt = running[task_id]
            flag.request(by)
            logger.warning("cancel requested by %s", by, extra={"task_id": task_id})
            if self._is_async(claim.task.name):
                attempt.cancel()
        if not any(claim.task.id in cancelling for claim in claimed):
            return claimed
        return collections.deque(
            _marked(claim, cancelling[claim.task.id]) if claim.task.id in cancelling else claim
            for claim in claimed
        )


def _marked(claim: Claim, by: str) -> Claim:
    return Claim(dataclasses.replace(claim.task, cancelled_by=by), claim.lease)
