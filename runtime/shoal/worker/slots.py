"""A worker's slots: the attempts running in them, and the threads that still take one.

A plain ``def`` task runs in a thread, and a thread cannot be interrupted: one that outlives
its attempt (its timeout, or the cancellation at the end of a drain) keeps its slot until
the function returns. Counting it keeps the worker from claiming work it has no thread for:
such work once waited for a thread and failed with a false "took longer than the task's
timeout" without having run. An attempt that outlives the drain, by ignoring its
cancellation or in its thread, is *abandoned*: logged, and left to its lease.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections.abc import Callable

from shoal.core.models import Claim
from shoal.worker.execution import Outcome

logger = logging.getLogger("shoal.worker")


class Slots:
    """The attempts of one worker, at most ``concurrency`` at once with busy threads."""

    def __init__(self, concurrency: int, *, freed: Callable[[], None]) -> None:
        self.concurrency = concurrency
        self.running: dict[str, tuple[Claim, asyncio.Task[Outcome]]] = {}
        self.busy_threads: dict[str, Claim] = {}  # functions that outlived their attempt
        self.abandoned: list[str] = []
        self.threads = concurrent.futures.ThreadPoolExecutor(
            concurrency, thread_name_prefix="shoal-task"
        )
        self._freed = freed  # the worker's loop: a slot came free

    @property
    def free(self) -> int:
        return self.concurrency - len(self.running) - len(self.busy_threads)

    def thread_outlived(self, claim: Claim, thread: asyncio.Future[object]) -> None:
        """``claim``'s function runs on past its attempt: its slot stays taken until then."""
        self.busy_threads[claim.task.id] = claim
        thread.add_done_callback(functools.partial(self._thread_returned, claim))

    def _thread_returned(self, claim: Claim, thread: asyncio.Future[object]) -> None:
        if not thread.cancelled():
            thread.exception()  # the attempt has ended already: nothing is told about it
        self.busy_threads.pop(claim.task.id, None)
        self._freed()

    def ended(self, claim: Claim, done: asyncio.Task[Outcome]) -> Outcome | None:
        """The outcome to record for an attempt that ended; None if there is none: it was
        abandoned, or cancelled while its thread runs on (releasing it would let another
        worker run it at the same time)."""
        task_id = claim.task.id
        self.running.pop(task_id, None)
        if task_id in self.abandoned:
            return None
        if done.cancelled():
            if task_id in self.busy_threads:
                self.abandoned.append(task_id)
                return None
            return Outcome(claim, 0.0, released=True)
        return done.result()

    def names(self) -> list[str]:
        """The tasks running now, as ``name id``, for the watchdog (read from its thread)."""
        return [f"{claim.task.name} {task_id}" for task_id, (claim, _) in self.running.items()]

    async def cancel_unfinished(self, grace: float, extra: dict[str, object]) -> None:
        """Cancel every running attempt and give them ``grace`` seconds to end; those that
        do are released (:meth:`ended`), the others are abandoned to their leases."""
        unfinished = {task_id: running for task_id, (_, running) in self.running.items()}
        for running in unfinished.values():
            running.cancel()
        if unfinished:
            await asyncio.wait(unfinished.values(), timeout=grace)
        self.abandoned += [task_id for task_id, run in unfinished.items() if not run.done()]
        released = sum(
            1
            for task_id, running in unfinished.items()
            if running.cancelled() and task_id not in self.abandoned
        )
        if released:
            logger.warning("released %d unfinished tasks", released, extra=extra)
        for task_id in self.abandoned:
            logger.error(
                "still running after the shutdown timeout (it ignored its cancellation): "
                "left to its lease, which expires once this worker has gone",
                extra={"task_id": task_id, **extra},
            )

    def shutdown(self) -> None:
        self.threads.shutdown(wait=False, cancel_futures=True)
