"""The worker: claim up to free capacity, run, record outcomes in batches, drain on stop.

One loop drives everything: it records finished attempts, heartbeats, reaps, claims and
waits. Heartbeats ride on the loop on purpose: a worker whose loop is stuck stops renewing
its leases, and its tasks go to a healthy worker once they expire.

Outcomes are recorded in the background, one batch at a time: while the backend stores
one batch, the loop claims the next and runs it, so the database's work and the worker's
overlap instead of taking turns (bench/postgres_throughput.py measures what that gives).
An outcome leaves the buffer only once stored, and a failed batch is raised in the loop,
which backs off and sends it again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import random
import socket
import time
from pathlib import Path

from shoal.app import App, Event, EventName
from shoal.backends import Backend
from shoal.core.errors import ConfigurationError, LeaseLost, ShoalError
from shoal.core.ids import new_id
from shoal.core.models import Claim, WorkerInfo, utcnow
from shoal.core.settings import WorkerSettings
from shoal.worker import metrics
from shoal.worker.execution import Outcome, execute

logger = logging.getLogger("shoal.worker")

_BACKOFF_CAP = 5.0


class Worker:
    """Runs the tasks of one app from some of its queues; see :class:`WorkerSettings`."""

    def __init__(self, app: App, settings: WorkerSettings | None = None) -> None:
        self.app = app
        self.settings = settings or WorkerSettings()
        self.id = new_id()
        self.host = os.environ.get("POD_NAME") or socket.gethostname()
        self.queues = self.settings.queues or tuple(app.queues)
        self.processed = 0
        self.stop_reason: str | None = None
        self._running: dict[str, tuple[Claim, asyncio.Task[Outcome]]] = {}
        self._outcomes: list[Outcome] = []
        self._recording: asyncio.Task[None] | None = None
        self._sending: set[int] = set()  # ids of the outcomes a backend call is storing
        self._wakeup = asyncio.Event()
        self._hurry = False
        self._threads = concurrent.futures.ThreadPoolExecutor(
            self.settings.concurrency, thread_name_prefix="shoal-task"
        )
        self._started_at = utcnow()
        self._next_heartbeat = 0.0
        self._next_reap = 0.0
        self._failures_in_a_row = 0

    @property
    def backend(self) -> Backend:
        return self.app.backend

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def stop(self, reason: str = "asked to stop") -> None:
        """Stop claiming and drain. Calling it again skips the wait for running tasks."""
        if self.stop_reason is not None:
            self._hurry = True
            logger.warning("stopping now: unfinished tasks are released", extra=self._extra())
        else:
            self.stop_reason = reason
            logger.info("draining: %s", reason, extra=self._extra())
        self._wakeup.set()

    async def run(self) -> None:
        """Work until :meth:`stop` is called (or recycling asks to), then drain and return."""
        if not self.queues:
            raise ConfigurationError("the app registers no tasks and no queues were given")
        await self.app.open()
        logger.info(
            "worker %s on %s serving %s with concurrency %d",
            self.id,
            self.host,
            ", ".join(self.queues),
            self.settings.concurrency,
            extra=self._extra(),
        )
        await self._emit(Event("worker_started", self.id))
        try:
            while self.stop_reason is None:
                try:
                    await self._step()
                    self._failures_in_a_row = 0
                except ShoalError as error:
                    await self._back_off(error)
        finally:
            await self._drain()

    # -- the loop ----------------------------------------------------------------------------

    async def _step(self) -> None:
        self._wakeup.clear()
        await self._tick()
        free = self.settings.concurrency - len(self._running)
        if free > 0:
            started = time.perf_counter()
            claims = await self.backend.claim(
                self.queues, self.id, free, self.settings.lease_seconds
            )
            metrics.CLAIM_LATENCY.observe(time.perf_counter() - started)
            for claim in claims:
                await self._start(claim)
            if claims:
                return
        await self._wait(work_welcome=free > 0)

    async def _tick(self) -> None:
        """Record outcomes (in the background), heartbeat and reap when due, touch the
        health file."""
        self._record_in_background()
        now = time.monotonic()
        if now >= self._next_heartbeat:
            await self._heartbeat()
            self._next_heartbeat = now + self.settings.heartbeat_interval
            if self.settings.health_file:
                _touch(Path(self.settings.health_file))
        if now >= self._next_reap:
            report = await self.backend.reap(worker_timeout=self.settings.lease_seconds * 3)
            for task_id in report.requeued:
                logger.warning("lease expired: re-queued", extra={"task_id": task_id})
            for task_id in report.dead:
                logger.error("lease expired too often: dead", extra={"task_id": task_id})
            # Jitter keeps a fleet of workers from reaping in lockstep.
            self._next_reap = now + self.settings.reap_interval * random.uniform(0.8, 1.2)

    async def _wait(self, *, work_welcome: bool) -> None:
        timeout = max(
            0.0, min(self.settings.poll_interval, self._next_heartbeat - time.monotonic())
        )
        waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(self._wakeup.wait())}
        if work_welcome:
            waiters.add(asyncio.ensure_future(self.backend.wait_for_work(self.queues, timeout)))
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _back_off(self, error: ShoalError) -> None:
        self._failures_in_a_row += 1
        delay = min(_BACKOFF_CAP, 0.1 * 2**self._failures_in_a_row) * random.uniform(0.5, 1)
        logger.error("backend error, retrying in %.1fs: %s", delay, error, extra=self._extra())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), delay)

    # -- tasks -------------------------------------------------------------------------------

    async def _start(self, claim: Claim) -> None:
        await self._emit(Event("task_started", self.id, claim.task))
        running = asyncio.create_task(
            execute(
                self.app,
                claim,
                worker_id=self.id,
                threads=self._threads,
                stop_worker=lambda: self.stop("a task asked the worker to stop"),
            )
        )
        self._running[claim.task.id] = (claim, running)
        running.add_done_callback(lambda done: self._finished(claim, done))

    def _finished(self, claim: Claim, done: asyncio.Task[Outcome]) -> None:
        self._running.pop(claim.task.id, None)
        if done.cancelled():
            outcome = Outcome(claim, 0.0, released=True)
        else:
            outcome = done.result()
            self.processed += 1
        self._outcomes.append(outcome)
        self._wakeup.set()
        self._check_recycling()

    def _check_recycling(self) -> None:
        if self.stop_reason is not None:
            return
        limit = self.settings.max_tasks
        if limit is not None and self.processed >= limit:
            self.stop(f"recycling after {self.processed} tasks")
        elif self.settings.max_rss_mb is not None:
            rss = resident_memory_mb()
            if rss > self.settings.max_rss_mb:
                self.stop(f"recycling at {rss:.0f} MiB resident memory")

    def _record_in_background(self) -> None:
        """Start sending the buffered outcomes, unless a batch is on its way already.

        Raises the error that the previous batch met, if any (its outcomes are still
        buffered): the loop backs off, and the next tick sends them again.
        """
        recording = self._recording
        if recording is not None:
            if not recording.done():
                return
            self._recording = None
            error = None if recording.cancelled() else recording.exception()
            if error is not None:
                raise error
        if self._outcomes:
            self._recording = asyncio.create_task(self._record_then_wake())

    async def _record_then_wake(self) -> None:
        try:
            await self._record_outcomes()
        except ShoalError:
            self._wakeup.set()  # the loop raises it, and backs off
            raise
        if self._outcomes:
            self._wakeup.set()  # more finished meanwhile: the loop sends them now

    async def _recorded(self) -> None:
        """Wait for the batch on its way, if any; raises its error."""
        recording, self._recording = self._recording, None
        if recording is not None:
            await recording

    async def _record_outcomes(self) -> None:
        """Send finished attempts to the backend, one batch per kind of outcome.

        A batch leaves the buffer only once stored: after a backend error it is sent again on
        the next tick, and its leases keep being renewed meanwhile.
        """
        for kind in ("ack", "fail", "release"):
            batch = [outcome for outcome in self._outcomes if outcome.kind == kind]
            if not batch:
                continue
            self._sending = {id(outcome) for outcome in batch}
            try:
                if kind == "ack":
                    await self.backend.ack([o.lease for o in batch])
                elif kind == "fail":
                    await self.backend.fail([o.failure for o in batch if o.failure])
                else:
                    await self.backend.release([o.lease for o in batch])
            except LeaseLost as lost:
                metrics.LEASES_LOST.inc(len(lost.task_ids))
                for task_id in lost.task_ids:
                    logger.warning(
                        "lease lost: the result was discarded; another worker owns the task now",
                        extra={"task_id": task_id},
                    )
            finally:
                self._sending = set()
            stored = {id(outcome) for outcome in batch}
            self._outcomes = [o for o in self._outcomes if id(o) not in stored]
            for outcome in batch:
                await self._emit(
                    Event(
                        outcome.event_name,
                        self.id,
                        outcome.claim.task,
                        outcome.duration,
                        outcome.error,
                    )
                )

    async def _heartbeat(self) -> None:
        # Outcomes being stored right now are left out: the heartbeat and the record then
        # never update the same rows at once (no lock waits, no deadlock between the two).
        # Should that record fail, the next heartbeat renews their leases again.
        leases = [claim.lease for claim, _ in self._running.values()]
        leases += [o.lease for o in self._outcomes if id(o) not in self._sending]
        info = WorkerInfo(
            id=self.id,
            host=self.host,
            pid=os.getpid(),
            queues=tuple(self.queues),
            concurrency=self.settings.concurrency,
            in_flight=len(self._running),
            started_at=self._started_at,
        )
        lost = await self.backend.heartbeat(info, leases, self.settings.lease_seconds)
        for task_id in lost:
            # An outcome whose record started during the heartbeat may be stored already;
            # a finished attempt whose lease was really lost is reported by its record.
            if task_id in self._running:
                logger.warning("lease lost while running", extra={"task_id": task_id})

    # -- shutdown ----------------------------------------------------------------------------

    async def _drain(self) -> None:
        deadline = time.monotonic() + self.settings.shutdown_timeout
        if self._running:
            logger.info(
                "waiting up to %.0fs for %d running tasks",
                self.settings.shutdown_timeout,
                len(self._running),
                extra=self._extra(),
            )
        while self._running and not self._hurry and time.monotonic() < deadline:
            self._wakeup.clear()
            try:
                await self._tick()
            except ShoalError as error:
                logger.error("backend error while draining: %s", error, extra=self._extra())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wakeup.wait(),
                    max(0.0, min(deadline - time.monotonic(), self.settings.heartbeat_interval)),
                )
        unfinished = [running for _, running in self._running.values()]
        for running in unfinished:
            running.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        if unfinished:
            logger.warning("released %d unfinished tasks", len(unfinished), extra=self._extra())
        await self._settle()
        self._threads.shutdown(wait=False, cancel_futures=True)
        await self._emit(Event("worker_stopped", self.id))
        logger.info(
            "worker %s stopped after %d tasks", self.id, self.processed, extra=self._extra()
        )

    async def _settle(self) -> None:
        """Last records and deregistration, retried briefly if the backend is away."""
        for attempt in range(5):
            try:
                with contextlib.suppress(ShoalError):  # sent again just below
                    await self._recorded()
                await self._record_outcomes()
                await self.backend.deregister(self.id)
                return
            except ShoalError as error:
                logger.error(
                    "cannot record the last outcomes (%s); try %d of 5",
                    error,
                    attempt + 1,
                    extra=self._extra(),
                )
                await asyncio.sleep(0.5 * 2**attempt)
        logger.error(
            "gave up: leases will expire and the tasks will be re-queued", extra=self._extra()
        )

    async def _emit(self, event: Event) -> None:
        metrics.observe(event)
        task = event.task
        if task is not None:
            _log_event(event.name, task.id, task.queue, task.name, event)
        if self.app.hooks.wants(event.name):
            await self.app.hooks.emit(event)

    def _extra(self) -> dict[str, object]:
        return {"worker_id": self.id}


_LEVELS: dict[EventName, int] = {
    "task_started": logging.DEBUG,
    "task_succeeded": logging.INFO,
    "task_retrying": logging.WARNING,
    "task_dead": logging.ERROR,
    "task_released": logging.WARNING,
}


def _log_event(name: EventName, task_id: str, queue: str, task_name: str, event: Event) -> None:
    level = _LEVELS.get(name, logging.INFO)
    if not logger.isEnabledFor(level):
        return
    extra: dict[str, object] = {
        "task_id": task_id,
        "queue": queue,
        "task": task_name,
        "worker_id": event.worker_id,
    }
    if event.duration is not None:
        extra["duration"] = round(event.duration, 6)
    if event.error is not None:
        extra["error"] = f"{type(event.error).__name__}: {event.error}"
    logger.log(level, name.replace("_", " "), extra=extra)


def _touch(path: Path) -> None:
    """Mark the loop alive; the folder may be new (a pod's /tmp is an empty emptyDir)."""
    try:
        path.touch()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def resident_memory_mb() -> float:
    """Current resident set size, from /proc where there is one."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
