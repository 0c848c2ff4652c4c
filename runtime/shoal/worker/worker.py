"""The worker: claim for free slots, run, record outcomes in batches, drain on stop.

One loop drives everything: it starts claimed tasks, asks for more, records finished
attempts (in the background, see :mod:`shoal.worker.recorder`), heartbeats, reaps and waits.
Heartbeats ride on the loop on purpose: a worker whose loop is stuck stops renewing its
leases, and its tasks go to a healthy worker once they expire.

Claims run in the background too, so the loop keeps starting and recording while the
backend picks the next batch; they may ask for more than the free slots (see
:mod:`shoal.worker.prefetch`), so that the next batch is at hand as soon as slots free up.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import logging
import os
import random
import socket
import time
from pathlib import Path

from shoal.app import App, Event
from shoal.backends import Backend
from shoal.core.errors import ConfigurationError, ShoalError
from shoal.core.ids import new_id
from shoal.core.models import Claim, WorkerInfo, utcnow
from shoal.core.settings import WorkerSettings
from shoal.core.waiting import first_of
from shoal.worker import metrics
from shoal.worker.events import LEVELS, log_event
from shoal.worker.execution import Outcome, execute
from shoal.worker.health import resident_memory_mb, touch_health_file
from shoal.worker.prefetch import claim_ahead, updated_run_time
from shoal.worker.recorder import Recorder

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
        self._claimed: collections.deque[Claim] = collections.deque()  # not started yet
        self._claiming: asyncio.Task[list[Claim]] | None = None
        self._found_nothing = False
        self._typical_run_time: float | None = None  # decides how far ahead to claim
        self._wakeup = asyncio.Event()
        self._recorder = Recorder(
            lambda: self.app.backend, stored=self._announce_ended, wake=self._wakeup.set
        )
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
        """Tasks this worker holds: running, or claimed ahead and about to start."""
        return len(self._running) + len(self._claimed)

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
        self._collect_claim()
        await self._start_claimed()
        wanted = self._wanted()
        if wanted > 0 and self._claiming is None:
            if self._found_nothing:
                # The last claim came back empty: wait for a wake-up or the next poll.
                self._found_nothing = False
                await self._wait(work_welcome=True)
                return
            self._claiming = asyncio.create_task(self._claim(wanted))
        await self._wait(work_welcome=False)

    def _wanted(self) -> int:
        """How many tasks the next claim asks for: free slots, plus what to claim ahead,
        less what is claimed already; never more than recycling leaves to run."""
        settings = self.settings
        ahead = claim_ahead(settings.concurrency, settings.prefetch, self._typical_run_time)
        wanted = settings.concurrency + ahead - self.in_flight
        if settings.max_tasks is not None:
            wanted = min(wanted, settings.max_tasks - self.processed - self.in_flight)
        return wanted

    async def _tick(self) -> None:
        """Record outcomes (in the background), heartbeat and reap when due, touch the
        health file."""
        self._recorder.send_in_background()
        now = time.monotonic()
        if now >= self._next_heartbeat:
            await self._heartbeat()
            self._next_heartbeat = now + self.settings.heartbeat_interval
            if self.settings.health_file:
                touch_health_file(Path(self.settings.health_file))
        if now >= self._next_reap:
            report = await self.backend.reap(worker_timeout=self.settings.lease_seconds * 3)
            for task_id in report.requeued:
                logger.warning("lease expired: re-queued", extra={"task_id": task_id})
            for task_id in report.dead:
                logger.error("lease expired too often: dead", extra={"task_id": task_id})
            # Jitter keeps a fleet of workers from reaping in lockstep.
            self._next_reap = now + self.settings.reap_interval * random.uniform(0.8, 1.2)

    async def _claim(self, limit: int) -> list[Claim]:
        started = time.perf_counter()
        try:
            return await self.backend.claim(
                self.queues, self.id, limit, self.settings.lease_seconds
            )
        finally:
            metrics.CLAIM_LATENCY.observe(time.perf_counter() - started)
            self._wakeup.set()

    def _collect_claim(self) -> None:
        """Take in the claim that came back, if one did; raises its error."""
        claiming = self._claiming
        if claiming is None or not claiming.done():
            return
        self._claiming = None
        claims = claiming.result()
        self._claimed.extend(claims)
        self._found_nothing = not claims

    async def _wait(self, *, work_welcome: bool) -> None:
        if self._wakeup.is_set():
            return
        timeout = max(
            0.0, min(self.settings.poll_interval, self._next_heartbeat - time.monotonic())
        )
        if not work_welcome:
            await first_of(self._wakeup.wait(), timeout=timeout)
            return
        await first_of(
            self._wakeup.wait(), self.backend.wait_for_work(self.queues, timeout), timeout=timeout
        )

    async def _back_off(self, error: ShoalError) -> None:
        self._failures_in_a_row += 1
        delay = min(_BACKOFF_CAP, 0.1 * 2**self._failures_in_a_row) * random.uniform(0.5, 1)
        logger.error("backend error, retrying in %.1fs: %s", delay, error, extra=self._extra())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), delay)

    # -- tasks -------------------------------------------------------------------------------

    async def _start_claimed(self) -> None:
        """Start claimed tasks in the free slots."""
        free = self.settings.concurrency - len(self._running)
        if free <= 0 or not self._claimed:
            return
        starting = [self._claimed.popleft() for _ in range(min(free, len(self._claimed)))]
        metrics.started(starting)
        logged = logger.isEnabledFor(LEVELS["task_started"])
        announced = self.app.hooks.wants("task_started")
        for claim in starting:
            if logged:
                log_event("task_started", self.id, claim.task)
            if announced:
                await self.app.hooks.emit(Event("task_started", self.id, claim.task))
            running = asyncio.create_task(
                execute(
                    self.app,
                    claim,
                    worker_id=self.id,
                    threads=self._threads,
                    stop_worker=self._stop_for_task,
                )
            )
            self._running[claim.task.id] = (claim, running)
            running.add_done_callback(functools.partial(self._finished, claim))

    def _stop_for_task(self) -> None:
        self.stop("a task asked the worker to stop")

    def _finished(self, claim: Claim, done: asyncio.Task[Outcome]) -> None:
        self._running.pop(claim.task.id, None)
        if done.cancelled():
            outcome = Outcome(claim, 0.0, released=True)
        else:
            outcome = done.result()
            self.processed += 1
            self._typical_run_time = updated_run_time(self._typical_run_time, outcome.duration)
        self._recorder.add(outcome)
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

    async def _announce_ended(self, outcomes: list[Outcome]) -> None:
        """Log stored outcomes and tell the hooks (metrics count them in the recorder)."""
        for outcome in outcomes:
            name = outcome.event_name
            task = outcome.claim.task
            if logger.isEnabledFor(LEVELS[name]):
                log_event(name, self.id, task, outcome.duration, outcome.error)
            if self.app.hooks.wants(name):
                await self.app.hooks.emit(
                    Event(name, self.id, task, outcome.duration, outcome.error)
                )

    async def _heartbeat(self) -> None:
        leases = [claim.lease for claim, _ in self._running.values()]
        leases += [claim.lease for claim in self._claimed]
        leases += self._recorder.unsent_leases()
        info = WorkerInfo(
            id=self.id,
            host=self.host,
            pid=os.getpid(),
            queues=tuple(self.queues),
            concurrency=self.settings.concurrency,
            in_flight=self.in_flight,
            started_at=self._started_at,
        )
        lost = set(await self.backend.heartbeat(info, leases, self.settings.lease_seconds))
        if lost and self._claimed:
            # Held too long (a stalled loop): another worker may own them now; not ours to run.
            self._claimed = collections.deque(c for c in self._claimed if c.task.id not in lost)
        for task_id in lost:
            # An outcome whose record started during the heartbeat may be stored already;
            # a finished attempt whose lease was really lost is reported by its record.
            if task_id in self._running:
                logger.warning("lease lost while running", extra={"task_id": task_id})

    # -- shutdown ----------------------------------------------------------------------------

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
        for attempt in range(5):
            try:
                await self._recorder.settle()
                await self._release_claimed()
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
        if self.app.hooks.wants(event.name):
            await self.app.hooks.emit(event)

    def _extra(self) -> dict[str, object]:
        return {"worker_id": self.id}
